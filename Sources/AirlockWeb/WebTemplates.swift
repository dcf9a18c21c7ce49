import Mustache

/// The page's templates (swift-mustache). Every value goes through `{{name}}`, which
/// escapes it (HTMLText, by Unicode scalar); the one `{{{body}}}` is a page this file
/// rendered. Nothing an agent sent is ever put in a script, a style or an attribute other
/// than quoted, escaped text (docs/web.md, "What the page trusts").
enum WebTemplates {
    static let pragma = "{{% CONTENT_TYPE: AIRLOCK_HTML}}"

    static let layout = pragma + """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="same-origin">
        {{#refresh}}<meta http-equiv="refresh" content="0;url={{.}}">{{/refresh}}
        <title>{{title}} · Airlock</title>
        <link rel="stylesheet" href="/ui/static/app.css">
        <script src="/ui/static/app.js" defer></script>
        </head><body data-page="{{page}}">
        <header><a class="brand" href="/ui/">Airlock</a><span class="muted">{{place}}</span>
        {{#user}}<span id="whoami">{{name}} ({{role}})</span><a id="audit-link" href="/ui/audit">Audit log</a>
        <form id="signout" method="post" action="/ui/signout"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Sign out</button></form>{{/user}}
        </header>
        <main>{{{body}}}</main>
        </body></html>
        """

    static let message = pragma + """
        <h1>{{heading}}</h1>
        {{#error}}<p id="error">{{.}}</p>{{/error}}
        {{#text}}<p>{{.}}</p>{{/text}}
        {{#next}}<p><a id="next" href="{{href}}">{{label}}</a></p>{{/next}}
        """

    static let signin = pragma + """
        <h1>Sign in to approve changes</h1>
        {{#oidc}}<p><a id="signin-oidc" href="/ui/oidc/start">Sign in with {{issuer}}</a></p>{{/oidc}}
        <p class="muted">{{#proxy}}People behind the team's sign-in proxy are signed in by it. {{/proxy}}An admin can give you a one-time link:
        <code>airlock gate user add NAME --login-link</code>{{#local}} (here: the link <code>airlock ui</code> printed){{/local}}.</p>
        """

    static let login = pragma + """
        <h1>Sign in as {{name}}</h1>
        <p>This link works once{{#expires}} and until {{.}}{{/expires}}.</p>
        <form id="login-form" method="post" action="/ui/login">
        <input type="hidden" name="token" value="{{token}}">
        <button id="login-continue" type="submit">Continue as {{name}}</button>
        </form>
        """

    static let queueTable = pragma + """
        <table id="queue" data-generation="{{generation}}">
        <thead><tr><th>Change</th><th>State</th><th>Approvals</th><th class="wide">Session</th><th class="wide">Proposed</th></tr></thead>
        <tbody>
        {{#rows}}<tr class="proposal" data-id="{{id}}" data-state="{{state}}">
        <td><a class="proposal-link" href="/ui/proposals/{{id}}">{{summary}}</a>{{#labels}} <span class="label">{{.}}</span>{{/labels}}</td>
        <td class="state state-{{state}}">{{state}}</td><td class="approvals">{{approvals}}</td>
        <td class="session">{{session}}</td><td class="age">{{created}}</td></tr>
        {{/rows}}
        {{^rows}}<tr class="empty"><td colspan="5">Nothing is waiting for a decision.</td></tr>{{/rows}}
        </tbody></table>
        """

    static let queue = pragma + """
        {{#frozen}}<p class="banner" id="frozen">Frozen: no execution starts. {{reason}}</p>{{/frozen}}
        <h1>Changes <span id="live" class="muted">…</span></h1>
        {{{table}}}
        {{#admin}}<form method="post" action="/ui/{{freezeAction}}"><input type="hidden" name="csrf" value="{{csrf}}">
        <button id="freeze" type="submit">{{freezeLabel}}</button></form>{{/admin}}
        """

    static let proposal = pragma + """
        {{#flash}}<p id="flash">{{.}}</p>{{/flash}}
        {{#error}}<p id="error">{{.}}</p>{{/error}}
        <h1 id="summary">{{summary}}</h1>
        <p>State: <span id="state" class="state-{{state}}">{{state}}</span>{{#decidedBy}} · decided by {{.}}{{/decidedBy}}{{#note}} · “{{.}}”{{/note}}</p>
        <p id="rules">{{rules}}</p>
        <ul id="approvers">{{#approvers}}<li>{{.}}</li>{{/approvers}}</ul>
        {{#waiting}}<p id="waiting">{{.}}</p>{{/waiting}}
        {{#canDecide}}
        <form id="decide" method="post" action="/ui/proposals/{{id}}/decide">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="digest" value="{{digest}}">
        <input type="hidden" name="preview" value="{{previewDigest}}">
        <label for="reason">Reason (recorded in the audit log)</label>
        <textarea id="reason" name="reason" maxlength="2000"></textarea>
        <div><button id="approve" name="decision" value="approve" type="submit">Approve and run</button>
        <button id="deny" name="decision" value="deny" type="submit">Deny</button></div>
        </form>
        {{/canDecide}}
        <section id="preview"><h2>What it will do</h2>
        {{#hasLabels}}<ul id="risk-labels">{{#labels}}<li><span class="label">{{label}}</span> {{reason}}</li>{{/labels}}</ul>{{/hasLabels}}
        {{#plan}}<pre id="plan">{{.}}</pre>{{/plan}}
        {{#previewText}}<pre id="preview-text">{{.}}</pre>{{/previewText}}
        {{^previewText}}<p class="muted">No preview for this change: the request below is all there is to review.</p>{{/previewText}}
        </section>
        <section><h2>The request, exactly as it will run</h2><pre id="request">{{request}}</pre>
        {{#decoded}}<h3>Decoded, to read</h3><pre id="request-decoded">{{.}}</pre>{{/decoded}}</section>
        {{#result}}<section><h2>Result</h2><pre id="result">{{.}}</pre></section>{{/result}}
        <section><h2>Where it comes from</h2>
        <dl id="origin"><dt>Proposal</dt><dd>{{id}}</dd><dt>Session</dt><dd>{{session}}</dd><dt>Host</dt><dd>{{host}}</dd>
        {{#launcher}}<dt>Launched by</dt><dd>{{.}}</dd>{{/launcher}}<dt>Workspace</dt><dd>{{workspace}}</dd>
        <dt>Gated by</dt><dd>{{rule}}</dd><dt>Proposed</dt><dd>{{created}}</dd>{{#expires}}<dt>Expires</dt><dd>{{.}}</dd>{{/expires}}
        {{#group}}<dt>Change set</dt><dd>{{.}}</dd>{{/group}}<dt>Digest</dt><dd><code>{{digest}}</code></dd></dl></section>
        <section><h2>Audit trail</h2>
        <table id="audit-trail"><thead><tr><th>#</th><th>When</th><th>Event</th><th>Who</th><th>Detail</th></tr></thead><tbody>
        {{#trail}}<tr class="entry"><td>{{seq}}</td><td>{{at}}</td><td>{{event}}</td><td>{{actor}}</td><td>{{detail}}</td></tr>{{/trail}}
        </tbody></table>
        <p><a href="/ui/audit?proposal={{id}}">In the audit log</a></p></section>
        """

    static let audit = pragma + """
        <h1>Audit log</h1>
        <form class="filters" method="get" action="/ui/audit">
        <label>Proposal <input name="proposal" value="{{proposal}}" size="10"></label>
        <label>Who <input name="actor" value="{{actor}}" size="16"></label>
        <label>Event <input name="event" value="{{event}}" size="14"></label>
        <button type="submit">Filter</button></form>
        <p class="muted">{{shown}} of {{matching}} matching entries, newest first{{#head}}; chain head #{{seq}} {{hash}}{{/head}}.</p>
        <table id="audit"><thead><tr><th>#</th><th>When</th><th>Event</th><th>Proposal</th><th>Who</th><th>Detail</th></tr></thead><tbody>
        {{#entries}}<tr class="entry"><td>{{seq}}</td><td>{{at}}</td><td class="event">{{event}}</td>
        <td>{{#proposalID}}<a href="/ui/proposals/{{.}}">{{.}}</a>{{/proposalID}}</td><td>{{actor}}</td><td>{{detail}}</td></tr>{{/entries}}
        </tbody></table>
        """

    /// Parsed once; a template that does not parse is a bug caught by every test.
    static let compiled: [String: MustacheTemplate] = {
        _ = HTMLText.registered
        var out: [String: MustacheTemplate] = [:]
        for (name, text) in [("layout", layout), ("message", message), ("signin", signin), ("login", login), ("queueTable", queueTable),
                             ("queue", queue), ("proposal", proposal), ("audit", audit)] {
            out[name] = try! MustacheTemplate(string: text)
        }
        return out
    }()

    static func render(_ name: String, _ context: [String: Any]) -> String {
        compiled[name]!.render(context)
    }
}
