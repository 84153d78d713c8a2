//! Builds (or finds in the cache) the test guest and prints where it is, as shell
//! assignments: `kernel=PATH` and `initrd=PATH`. The benchmarks boot it.

fn main() -> anyhow::Result<()> {
    let image = tresor_testguest::GuestImage::build()?;
    println!("kernel={}", image.kernel.display());
    println!("initrd={}", image.initrd.display());
    Ok(())
}
