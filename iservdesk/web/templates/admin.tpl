% rebase("base.tpl", **locals())
<h1>{{t["admin.heading"]}}</h1>
% # Shown only while containers of the old product are on the engine (admin.js).
<section id="seed" class="tokens" aria-labelledby="seed-heading" hidden>
  <h2 id="seed-heading">{{t["seed.heading"]}}</h2>
  <p class="hint">{{t["seed.hint"]}}</p>
  <ul class="preparations"></ul>
  <p><button type="button" class="button primary" data-action="import-seed">{{t["seed.button"]}}</button></p>
</section>
<section class="stats" aria-live="polite">
  <div class="stat"><span class="number" id="stat-total">–</span><span>{{t["admin.total"]}}</span></div>
  <div class="stat"><span class="number" id="stat-running">–</span><span>{{t["admin.running"]}}</span></div>
  <div class="stat"><span class="number" id="stat-users">–</span><span>{{t["admin.active_users"]}}</span></div>
  <div class="stat"><span class="number" id="stat-queued">–</span><span>{{t["admin.queued"]}}</span></div>
</section>
% # Shown only with DOCKER_BACKEND=swarm (admin.js).
<section id="nodes-section" aria-labelledby="nodes-heading" hidden>
  <h2 id="nodes-heading">{{t["admin.nodes"]}}</h2>
  <p class="hint" id="nodes-intro">{{t["admin.nodes_intro"]}}</p>
  <div class="table-wrap">
  <table id="nodes" aria-labelledby="nodes-heading">
    <thead><tr>
      <th scope="col">{{t["admin.node"]}}</th><th scope="col">{{t["admin.status"]}}</th>
      <th scope="col">{{t["admin.node_memory"]}}</th><th scope="col">{{t["admin.node_desktops"]}}</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  </div>
</section>
<div class="toolbar">
  <label for="filter">{{t["admin.filter"]}}</label>
  <input id="filter" type="search" placeholder="{{t['admin.filter_placeholder']}}" autocomplete="off">
  <button id="stop-all" type="button" class="danger">{{t["admin.stop_all"]}}</button>
</div>
<p id="notice" class="notice" role="status" aria-live="polite"></p>
<div class="table-wrap">
<table id="containers">
  <thead><tr>
    <th scope="col">{{t["admin.owner"]}}</th><th scope="col">{{t["admin.type"]}}</th>
    <th scope="col">{{t["admin.status"]}}</th><th scope="col">{{t["admin.created"]}}</th>
    <th scope="col">{{t["admin.last_access"]}}</th><th scope="col">{{t["admin.port"]}}</th>
    <th scope="col">{{t["admin.actions"]}}</th>
  </tr></thead>
  <tbody></tbody>
</table>
</div>
<h2 id="homes-heading">{{t["admin.homes"]}}</h2>
<p>{{t["admin.homes_intro"]}}</p>
<p id="homes-sizes" class="hint"></p>
<div class="table-wrap">
<table id="homes" aria-labelledby="homes-heading">
  <thead><tr>
    <th scope="col">{{t["admin.home_volume"]}}</th><th scope="col">{{t["admin.owner"]}}</th>
    <th scope="col">{{t["admin.home_desktop"]}}</th><th scope="col">{{t["admin.created"]}}</th>
    <th scope="col">{{t["admin.home_size"]}}</th><th scope="col">{{t["admin.status"]}}</th>
  </tr></thead>
  <tbody></tbody>
</table>
</div>
% if classroom:
<h2 id="preparations-heading">{{t["prepare.heading"]}}</h2>
<ul id="admin-preparations" class="preparations" aria-labelledby="preparations-heading"></ul>
% end
<h2 id="forget-heading">{{t["forget.heading"]}}</h2>
<p>{{t["forget.intro"]}}</p>
<form id="forget-form" class="prepare-form" aria-labelledby="forget-heading">
  <label>{{t["forget.person"]}} <input id="forget-person" required autocomplete="off"></label>
  <button type="submit" class="button">{{t["forget.check"]}}</button>
</form>
<div id="forget-plan" hidden>
  <ul class="preparations"></ul>
  <button id="forget-confirm" type="button" class="button danger">{{t["forget.confirm"]}}</button>
</div>
<h2>{{t["admin.audit"]}}</h2>
<div class="table-wrap">
<table id="audit">
  <thead><tr><th scope="col">{{t["admin.audit_at"]}}</th><th scope="col">{{t["admin.audit_actor"]}}</th>
  <th scope="col">{{t["admin.audit_action"]}}</th><th scope="col">{{t["admin.audit_target"]}}</th></tr></thead>
  <tbody>
  % for event in audit:
  <tr><td><time datetime="{{event.at.isoformat()}}">{{event.at.isoformat()}}</time></td><td>{{event.actor}}</td>
  <td>{{event.action}}</td><td>{{event.target}}</td></tr>
  % end
  </tbody>
</table>
</div>
<details id="tokens" class="tokens" data-scope="admin">
  <summary>{{t["tokens.heading_admin"]}}</summary>
  <p class="hint">{{t["tokens.hint_admin"]}}</p>
  <form class="prepare-form">
    <label>{{t["tokens.name_admin"]}} <input name="name" required maxlength="64"></label>
    <label>{{t["tokens.days"]}} <input name="days" type="number" min="1" max="366" value="90" required></label>
    <button type="submit" class="button primary">{{t["tokens.create"]}}</button>
  </form>
  <div id="token-new" class="token-new" role="status" hidden>
    <p>{{t["tokens.shown_once"]}}</p>
    <p><code></code></p>
  </div>
  <ul class="preparations"></ul>
</details>
