//! Newline-delimited reads with a size limit, shared by the QMP and guest-agent
//! clients: a peer that sends an endless line (or a huge one) is cut off with an
//! error naming the limit instead of making the reader buffer it all.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Why no line was read.
#[derive(Debug)]
pub(crate) enum LineError {
    /// The socket failed.
    Io(std::io::Error),
    /// More than `limit` bytes came without a newline. What was buffered is
    /// consumed (through the newline when one was in the buffer), so the next read
    /// continues after it.
    TooLong { limit: usize },
}

/// Reads one line, without its newline, of at most `limit` bytes. `Ok(None)` at end
/// of stream; a last line without newline is returned as a line.
pub(crate) async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await.map_err(LineError::Io)?;
        if available.is_empty() {
            return Ok(if line.is_empty() { None } else { Some(line) });
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let fits = line.len() + i <= limit;
                if fits {
                    line.extend_from_slice(&available[..i]);
                }
                reader.consume(i + 1);
                return if fits {
                    Ok(Some(line))
                } else {
                    Err(LineError::TooLong { limit })
                };
            }
            None => {
                let n = available.len();
                if line.len() + n > limit {
                    reader.consume(n);
                    return Err(LineError::TooLong { limit });
                }
                line.extend_from_slice(available);
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, BufReader};

    #[tokio::test]
    async fn lines_within_the_limit_and_beyond() {
        let (mut w, r) = tokio::io::duplex(64);
        let mut r = BufReader::with_capacity(8, r);
        let writer = tokio::spawn(async move {
            w.write_all(b"short\n0123456789abcdef\nnext\nlast")
                .await
                .unwrap();
        });
        assert_eq!(
            read_line_bounded(&mut r, 10).await.unwrap().unwrap(),
            b"short"
        );
        assert!(matches!(
            read_line_bounded(&mut r, 10).await,
            Err(LineError::TooLong { limit: 10 })
        ));
        // The rest of the long line is skipped once a newline is seen in the buffer;
        // whatever remains of it comes as the next line, still bounded.
        let mut next = read_line_bounded(&mut r, 10).await.unwrap().unwrap();
        if next != b"next" {
            next = read_line_bounded(&mut r, 10).await.unwrap().unwrap();
        }
        assert_eq!(next, b"next");
        assert_eq!(
            read_line_bounded(&mut r, 10).await.unwrap().unwrap(),
            b"last"
        );
        assert!(read_line_bounded(&mut r, 10).await.unwrap().is_none());
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_off_at_the_limit() {
        let (mut w, r) = tokio::io::duplex(4096);
        let mut r = BufReader::new(r);
        let writer = tokio::spawn(async move {
            // Would never end: stops only when the reader is gone.
            while w.write_all(&[b'x'; 4096]).await.is_ok() {}
        });
        assert!(matches!(
            read_line_bounded(&mut r, 100_000).await,
            Err(LineError::TooLong { limit: 100_000 })
        ));
        drop(r);
        writer.await.unwrap();
    }
}
