% rebase("base.tpl", **locals())
% if not user:
<section class="welcome">
  <h1>{{t["app.title"]}}</h1>
  <p class="tagline">{{t["app.tagline"]}}</p>
  <p>{{t["login.hint"]}}</p>
  <p><a class="button primary" id="login" href="/login">{{t["login.button"]}}</a></p>
</section>
% else:
<h1>{{t["desktops.heading"]}}</h1>
<p id="notice" class="notice" role="status" aria-live="polite"></p>
<div id="desktops" class="cards" data-lang="{{lang}}"></div>
<noscript><p>JavaScript is needed to start desktops.</p></noscript>
% end
