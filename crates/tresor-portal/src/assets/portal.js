// Tresor portal: the few things a page cannot do without a script. Pages work
// without it; with it, forms check names as they are typed and running jobs update
// in place. It talks to the server with the session cookie; writes carry the
// session's CSRF token (the <meta name="csrf-token"> of the page).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

// Live validation: <input data-validate="vault-name"> gets the server's rule check
// (the same rules as the API) a moment after each keystroke. The message goes into
// the element named by aria-describedby's first id ending in "-error".
function liveValidation() {
  for (const input of document.querySelectorAll("input[data-validate]")) {
    const out = document.getElementById(input.id + "-error");
    let timer = null;
    const check = async () => {
      if (!input.value) { input.removeAttribute("aria-invalid"); if (out) out.textContent = ""; return; }
      const url = `/portal/validate?kind=${encodeURIComponent(input.dataset.validate)}&value=${encodeURIComponent(input.value)}`;
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (!r.ok) return;
        const a = await r.json();
        if (a.ok) {
          input.setAttribute("aria-invalid", "false");
          if (out) out.textContent = "";
        } else {
          input.setAttribute("aria-invalid", "true");
          if (out) out.textContent = `${a.message} ${a.rule}`;
        }
        const form = input.form;
        if (form) {
          const bad = form.querySelector('input[aria-invalid="true"]');
          for (const b of form.querySelectorAll('button[type="submit"]')) b.disabled = !!bad;
        }
      } catch (_) { /* offline: the server checks again on submit */ }
    };
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 200); });
    input.addEventListener("blur", check);
  }
}

// Live jobs: a <table data-live-jobs="VAULT"> whose rows have data-job="ID" gets
// the status, task, percent and progress of running jobs every 2 seconds.
function liveJobs() {
  const table = document.querySelector("table[data-live-jobs]");
  if (!table) return;
  const vault = table.dataset.liveJobs;
  const tick = async () => {
    const running = [...table.querySelectorAll("tr[data-job]")].filter(
      (tr) => ["InProgress", "Cancelling"].includes(tr.dataset.status));
    if (running.length === 0) return;
    for (const tr of running) {
      try {
        const r = await fetch(`/api/v1/vaults/${encodeURIComponent(vault)}/jobs/${tr.dataset.job}`, { credentials: "same-origin" });
        if (!r.ok) continue;
        const j = await r.json();
        const ended = !["InProgress", "Cancelling"].includes(j.status);
        tr.dataset.status = j.status;
        // A job's own page (#job) shows its result or error once it ended: load it again.
        if (ended && table.id === "job") { window.location.reload(); return; }
        const set = (sel, text) => { const el = tr.querySelector(sel); if (el) el.textContent = text; };
        set("[data-field=status]", j.status.replace(/([a-z])([A-Z])/g, (_, a, b) => `${a} ${b.toLowerCase()}`));
        const badge = tr.querySelector("[data-field=status]");
        if (badge) badge.className = "badge " + ({ Completed: "good", CompletedWithWarnings: "warn", Failed: "bad", Cancelled: "plain", InProgress: "busy", Cancelling: "warn" }[j.status] || "plain");
        const task = (j.tasks || []).find((t) => t.status === "InProgress") || (j.tasks || []).slice(-1)[0];
        set("[data-field=task]", task ? task.name : "–");
        set("[data-field=percent]", `${Math.round(j.percent)} %`);
        const s = Math.max(0, Math.round(j.duration));
        set("[data-field=duration]", s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s`
          : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`);
        const bar = tr.querySelector(".progress > span");
        if (bar) bar.style.width = `${Math.min(100, j.percent)}%`;
        const pb = tr.querySelector("[role=progressbar]");
        if (pb) pb.setAttribute("aria-valuenow", String(Math.round(j.percent)));
      } catch (_) { /* try again next tick */ }
    }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

// Confirmations: <form data-confirm="text"> asks before it is sent.
function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  }
}

// Progress bars: <span data-percent="N"> inside .progress gets its width here (the
// content security policy allows no style attribute in the page).
function progressBars() {
  for (const bar of document.querySelectorAll(".progress > span[data-percent]")) {
    bar.style.width = `${Math.min(100, Number(bar.dataset.percent) || 0)}%`;
  }
}

document.addEventListener("DOMContentLoaded", () => { progressBars(); liveValidation(); liveJobs(); confirmations(); });
