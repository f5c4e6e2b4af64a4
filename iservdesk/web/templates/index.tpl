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
<noscript><p>JavaScript is needed to start desktops.</p></noscript>
% if classroom:
<section id="watch-history" class="watch-history" aria-labelledby="watch-history-heading" hidden>
  <h2 id="watch-history-heading">{{t["history.heading"]}}</h2>
  <ul></ul>
</section>
% end
% end
