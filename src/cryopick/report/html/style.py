"""The page's inline style sheet."""

_CSS = """
:root{--fg:#1d2330;--muted:#5b6472;--line:#d8dde6;--accent:#2458a6;--bg:#fff;--soft:#f4f6fa}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 64px}
header.page{border-bottom:2px solid var(--accent);margin-bottom:18px;padding-bottom:10px}
header.page h1{margin:0 0 4px;font-size:26px}
.meta{color:var(--muted);font-size:13px}
.meta code{font-size:12px}
h2{font-size:21px;margin:34px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:17px;margin:22px 0 6px}
h4{font-size:15px;margin:14px 0 6px}
h5,h6{font-size:14px;margin:12px 0 4px}
section section{margin-left:0}
section.run{border-left:3px solid var(--line);padding-left:16px;margin-top:22px}
nav.toc{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:10px 18px;font-size:14px}
nav.toc h2{border:0;margin:0 0 4px;font-size:16px;padding:0}
nav.toc ul{margin:2px 0;padding-left:20px}
nav.toc>ul{columns:2;column-gap:28px}
nav.toc li{break-inside:avoid}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13.5px}
th,td{border:1px solid var(--line);padding:4px 9px;text-align:left;vertical-align:top}
table.data thead th{background:var(--soft);position:sticky;top:0}
table.data tbody tr:nth-child(even){background:#fafbfd}
table.kv th{background:var(--soft);font-weight:600;white-space:nowrap}
table.kv td{max-width:640px;overflow-wrap:anywhere}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{font-weight:700;background:#eaf3e6 !important}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:0 22px}
.cfg h4{margin-bottom:2px}
figure{margin:10px 0 18px}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
figcaption{color:var(--muted);font-size:13px;margin-top:3px}
.caption,.muted,.sources{color:var(--muted);font-size:13px;margin:4px 0}
.warn{background:#fff6e0;border:1px solid #f0c36d;border-radius:4px;padding:6px 10px}
ul.warnings li{color:#8a5300}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--soft);padding:8px;overflow:auto}
details{margin:8px 0}summary{cursor:pointer;color:var(--accent)}
.ok{color:#2a8a2a;font-weight:700}.bad{color:#b35c00;font-weight:700}.varied{color:var(--accent);font-weight:700}
blockquote{margin:8px 0;padding:4px 12px;border-left:3px solid var(--line);color:var(--muted)}
.md table{font-size:13px}
.md h4{font-size:17px;margin-top:18px}.md h5{font-size:15px;margin-top:16px}.md h6{font-size:14px}
#summary{background:#f3f8ff;border:1px solid #c9d9f2;border-radius:6px;padding:2px 18px 10px;margin-bottom:18px}
#summary h2{margin-top:12px}#summary pre{white-space:pre-wrap;overflow-wrap:anywhere}
@media print{nav.toc>ul{columns:1}table.data thead th{position:static}}
"""
