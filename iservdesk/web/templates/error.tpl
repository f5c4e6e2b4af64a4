% rebase("base.tpl", **locals())
<section class="welcome">
  <h1>{{heading}}</h1>
  <p>{{text}}</p>
  <p><a class="button" href="/">{{t["header.home"]}}</a></p>
</section>
