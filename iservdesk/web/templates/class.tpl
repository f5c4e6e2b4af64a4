% rebase("base.tpl", **locals())
<p class="breadcrumb"><a href="/">{{t["header.home"]}}</a></p>
<p class="eyebrow">{{t["class.label"]}}</p>
<h1 class="class-name">{{group_name}}</h1>
% if group_name != group:
<p class="group-account">{{group}}</p>
% end
<p class="hint">{{t["class.who_appears"]}}</p>
% if watch:
<p class="privacy" id="privacy"><img class="eye" src="/static/icons/eye.svg" alt=""> {{t["class.watch_is_open"]}}</p>
% else:
<p class="privacy" id="privacy">{{t["class.watch_off"]}}</p>
% end
<p class="toolbar"><button id="stop-class" type="button" class="button danger">{{t["class.stop_all"]}}</button></p>
<p id="notice" class="notice" role="status" aria-live="polite"></p>
<div id="members" class="cards members" data-group="{{group}}" aria-live="polite"></div>
<noscript><p>JavaScript is needed to show the class.</p></noscript>
% # The members first: what a teacher looks at during a lesson; demo and preparing below.
<section id="demo" class="demo" aria-labelledby="demo-heading">
  <h2 id="demo-heading">{{t["demo.heading"]}}</h2>
  <p class="hint">{{t["demo.hint"]}}</p>
  <div id="demo-controls" aria-live="polite"></div>
</section>
<section id="prepare" class="demo" aria-labelledby="prepare-heading">
  <h2 id="prepare-heading">{{t["prepare.heading"]}}</h2>
  <p class="hint">{{t["prepare.hint"].replace("{minutes}", str(prepared_minutes))}}</p>
  <form id="prepare-form" class="prepare-form">
    <label>{{t["prepare.type"]}} <select id="prepare-type" required></select></label>
    <label>{{t["prepare.at"]}} <input id="prepare-at" type="datetime-local"></label>
    <button type="submit" class="button primary">{{t["prepare.button"]}}</button>
  </form>
  <ul id="preparations" class="preparations"></ul>
</section>
<section id="handouts-section" class="demo" aria-labelledby="handouts-heading">
  <h2 id="handouts-heading">{{t["handouts.heading"]}}</h2>
  <p class="hint">{{t["handouts.hint"]}}</p>
  <form id="material-form" class="prepare-form">
    <label>{{t["material.name"]}} <input id="material-name" required maxlength="100"></label>
    <label>{{t["material.files"]}} <input id="material-files" type="file" multiple required></label>
    <button type="submit" class="button primary">{{t["material.button"]}}</button>
  </form>
  <form id="assignment-form" class="prepare-form">
    <label>{{t["assignment.name"]}} <input id="assignment-name" required maxlength="100"></label>
    <label>{{t["assignment.deadline"]}} <input id="assignment-deadline" type="datetime-local"></label>
    <button type="submit" class="button primary">{{t["assignment.button"]}}</button>
  </form>
  <ul id="handouts" class="handouts" aria-live="polite"></ul>
</section>
