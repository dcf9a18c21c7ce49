/// The page's only script and style sheet, served from /ui/static/ (the Content-Security-
/// Policy allows scripts and styles from the page's own origin only: no inline script, no
/// inline style, nothing from elsewhere). No build chain: what is here is what runs.
enum WebAssets {
    /// Live queue: the server sends an event whenever a proposal changes on any replica
    /// (docs/web.md, "Live queue"); the script fetches the queue's HTML, which the server
    /// rendered and escaped, and puts it in place of the old one. No reload, no templating
    /// in the browser.
    static let script = """
        "use strict";
        (function () {
          var updates = 0;
          function refresh() {
            var queue = document.getElementById("queue");
            if (!queue) return;
            fetch("/ui/queue", {credentials: "same-origin", headers: {"Accept": "text/html"}})
              .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
              .then(function (html) {
                var holder = document.createElement("div");
                holder.innerHTML = html;
                var fresh = holder.querySelector("#queue");
                var current = document.getElementById("queue");
                if (fresh && current) {
                  current.replaceWith(fresh);
                  updates += 1;
                  document.body.dataset.updates = String(updates);
                }
              })
              .catch(function () {});
          }
          var source = null;
          function listen() {
            if (source || !window.EventSource || !document.getElementById("queue")) return;
            source = new EventSource("/ui/events");
            source.onmessage = refresh;
            var status = document.getElementById("live");
            source.onerror = function () { if (status) status.textContent = "reconnecting…"; };
            source.onopen = function () { if (status) status.textContent = "live"; refresh(); };
          }
          // A page left for another stays in the browser's back/forward cache with its
          // stream open; browsers allow six connections per host over HTTP/1.1, so a few
          // such pages would stall every later page load. Closed on leaving, opened on return.
          window.addEventListener("pagehide", function () { if (source) { source.close(); source = null; } });
          window.addEventListener("pageshow", function (event) { if (event.persisted) listen(); });
          document.addEventListener("DOMContentLoaded", listen);
        })();
        """

    static let style = """
        :root { color-scheme: light dark; --line: #8884; --accent: #2b6cb0; --warn: #c05621; --bad: #c53030; --good: #2f855a; }
        * { box-sizing: border-box; }
        body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; }
        header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
        header .brand { font-weight: 700; text-decoration: none; color: inherit; }
        header form { display: inline; margin: 0; }
        main { padding: 1rem; max-width: 70rem; margin: 0 auto; }
        h1 { font-size: 1.35rem; word-break: break-word; }
        h2 { font-size: 1.1rem; margin-top: 1.5rem; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; word-break: break-word; }
        pre { white-space: pre-wrap; word-break: break-word; background: #8881; padding: .6rem; border-radius: .3rem; max-height: 32rem; overflow: auto; }
        .label { display: inline-block; font-size: .8rem; padding: 0 .4rem; border-radius: .6rem; border: 1px solid var(--warn); color: var(--warn); }
        .state-pending { color: var(--warn); font-weight: 600; }
        .state-succeeded { color: var(--good); font-weight: 600; }
        .state-denied, .state-failed, .state-expired { color: var(--bad); font-weight: 600; }
        #error { color: var(--bad); font-weight: 600; }
        #flash { padding: .5rem; border-left: 4px solid var(--accent); background: #8881; }
        .banner { padding: .5rem; background: var(--bad); color: white; }
        dl#origin { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
        dl#origin dd { margin: 0; word-break: break-all; }
        form#decide { display: grid; gap: .5rem; margin: 1rem 0; max-width: 40rem; }
        form#decide textarea { width: 100%; min-height: 4rem; font: inherit; }
        button { font: inherit; padding: .45rem 1rem; border-radius: .3rem; border: 1px solid var(--line); cursor: pointer; }
        button#approve { background: var(--good); color: white; border-color: var(--good); }
        button#deny { background: var(--bad); color: white; border-color: var(--bad); }
        .muted { opacity: .7; }
        form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
        @media (max-width: 40rem) {
          th.wide, td.session, td.age { display: none; }
          main { padding: .6rem; }
        }
        """
}
