% rebase("base.tpl", **locals())
% if not user:
<section class="welcome">
  <h1>{{t["app.title"]}}</h1>
  <p class="tagline">{{t["app.tagline"]}}</p>
  <p>{{t["login.hint"]}}</p>
  <p><a class="button primary" id="login" href="/login">{{t["login.button"]}}</a></p>
</section>
% else:
% if classroom:
<div id="watching" class="watch-banner" role="status" aria-live="polite" hidden></div>
<div id="demos" class="demo-cards" aria-live="polite" hidden></div>
% end
% if teaches:
<section id="classes" class="classes" aria-labelledby="classes-heading" hidden>
  <h2 id="classes-heading">{{t["classes.heading"]}}</h2>
  <ul id="class-list" class="class-list"></ul>
</section>
% end
<h1>{{t["desktops.heading"]}}</h1>
<p id="notice" class="notice" role="status" aria-live="polite"></p>
<div id="desktops" class="cards" data-lang="{{lang}}"></div>
<p class="export"><a id="export" href="/api/files/export.zip" download hidden>{{t["files.export"]}}</a></p>
<dialog id="files-dialog" class="files-dialog" aria-labelledby="files-title">
  <h2 id="files-title"></h2>
  <p id="files-usage" class="files-usage"></p>
  <nav id="files-path" class="files-path" aria-label="{{t["files.home"]}}"></nav>
  <div class="table-wrap">
    <table id="files-table">
      <thead><tr><th scope="col">{{t["files.name"]}}</th><th scope="col">{{t["files.size"]}}</th>
        <th scope="col">{{t["files.modified"]}}</th><th scope="col"><span class="visually-hidden">{{t["files.delete"]}}</span></th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
  <div id="files-drop" class="files-drop">
    <p id="files-target" class="files-target"></p>
    <p>{{t["files.drop"]}} <label class="button" for="files-input">{{t["files.pick"]}}</label>
      <input id="files-input" class="visually-hidden" type="file" multiple></p>
    <ul id="files-progress" class="files-progress"></ul>
  </div>
  <p id="files-notice" class="notice" role="status" aria-live="polite"></p>
  <p class="files-actions"><a id="files-zip" class="button" download>{{t["files.zip_all"]}}</a>
    <button type="button" id="files-close">{{t["files.close"]}}</button></p>
</dialog>
<noscript><p>JavaScript is needed to start desktops.</p></noscript>
<details id="tokens" class="tokens" data-scope="own">
  <summary>{{t["tokens.heading_own"]}}</summary>
  <p class="hint">{{t["tokens.hint_own"]}}</p>
  <form class="prepare-form">
    <label>{{t["tokens.name_own"]}} <input name="name" required maxlength="64"></label>
    <label>{{t["tokens.days"]}} <input name="days" type="number" min="1" max="366" value="90" required></label>
    <button type="submit" class="button primary">{{t["tokens.create"]}}</button>
  </form>
  <div id="token-new" class="token-new" role="status" hidden>
    <p>{{t["tokens.shown_once"]}}</p>
    <p><code></code></p>
  </div>
  <ul class="preparations"></ul>
</details>
% if classroom:
<section id="watch-history" class="watch-history" aria-labelledby="watch-history-heading" hidden>
  <h2 id="watch-history-heading">{{t["history.heading"]}}</h2>
  <ul></ul>
</section>
% end
% end
