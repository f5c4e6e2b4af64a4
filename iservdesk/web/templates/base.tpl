<!doctype html>
<html lang="{{lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{csrf}}">
<title>{{title}} – iservdesk ({{host}})</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<a class="skip" href="#main">{{t["header.home"]}}</a>
<header class="top">
  <a class="brand" href="/"><img src="/static/favicon.svg" alt="" width="28" height="28"> iservdesk</a>
  <nav aria-label="{{t['header.language']}}" class="languages">
    % for code in ("de", "en"):
    <a href="/lang/{{code}}?next={{path}}" lang="{{code}}" hreflang="{{code}}"
       {{!'aria-current="true"' if code == lang else ''}}>{{code.upper()}}</a>
    % end
  </nav>
  % if user:
  <div class="account">
    <span>{{t["header.signed_in_as"]}} <strong id="user-name">{{user.display_name}}</strong></span>
    % if is_admin:
    <a class="admin-link" href="/admin" title="{{t['header.admin']}}"><span aria-hidden="true">⚙️</span><span class="label">{{t["header.admin"]}}</span></a>
    % end
    <form method="post" action="/logout">
      <input type="hidden" name="csrf_token" value="{{csrf}}">
      <button type="submit" class="link">{{t["header.logout"]}}</button>
    </form>
  </div>
  % end
</header>
<main id="main" tabindex="-1">
{{!base}}
</main>
<script type="application/json" id="i18n">{{!i18n_json}}</script>
% for script in scripts:
<script src="/static/{{script}}"></script>
% end
</body>
</html>
