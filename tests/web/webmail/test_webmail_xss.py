"""Hostile mail: a corpus of XSS vectors in HTML, SVG, CSS, headers and attachment names.

Every page that shows a hostile message (the list, the reading view, the
framed body, search results, reply and forward forms) is parsed and checked
for anything that could run script or fetch from elsewhere: script elements
other than our own file, event-handler attributes, script URLs, frames,
plugins, forms, meta refresh, base, foreign style sheets, CSS that fetches.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest
from webmail_world import ALICE, World, login

from mailwarden.web.webmail.sanitize import clean_html

HTML_VECTORS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph>"
    "</table></mtext></math>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<iframe src="https://evil.example/"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="https://evil.example/x.swf"></object>',
    '<embed src="https://evil.example/x.swf">',
    '<form action="https://evil.example/"><input name=p><button>Login</button></form>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "<style>@import 'https://evil.example/x.css'; body{background:url(https://evil.example/t)}</style>",
    '<div style="background:url(https://evil.example/t.gif)">bg</div>',
    '<div style="background-image: url(&quot;https://evil.example/t&quot;)">bg</div>',
    '<div style="width: expression(alert(1))">ie</div>',
    '<div style="behavior: url(x.htc)">ie</div>',
    '<div style="position:fixed;top:0;left:0;width:100%;height:100%">overlay</div>',
    '<div style="b\\61ckground:u\\72l(https://evil.example/t)">escaped</div>',
    '<img src="/logout">',
    '<img src="//evil.example/t.gif">',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<img srcset="https://evil.example/t.gif 1x">',
    '<video poster="https://evil.example/t.gif"></video>',
    '<body onload="alert(1)" background="https://evil.example/t.gif">',
    '<table background="https://evil.example/t.gif"><tr><td>t</td></tr></table>',
    '<details open ontoggle="alert(1)"><summary>x</summary></details>',
    '<p id="x" class="y" onclick="alert(1)" formaction="javascript:alert(1)">p</p>',
    "<!--<img src=x onerror=alert(1)>-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<template><script>alert(1)</script></template>",
    '"><script>alert(1)</script>',
]

FORBIDDEN_TAGS = {
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "input",
    "button", "meta", "base", "link", "style", "svg", "math", "template", "video", "audio",
    "source", "portal",
}  # fmt: skip
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "poster", "background", "srcset"}


class Inspector(HTMLParser):
    """Collects everything dangerous in a document."""

    def __init__(self, *, page: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag in FORBIDDEN_TAGS and not self._ours(tag, values):
            self.problems.append(f"<{tag} {values}>")
        for name, value in values.items():
            low = re.sub(r"[\s\x00-\x1f]", "", value).lower()
            if name.startswith("on"):
                self.problems.append(f"{tag}[{name}]")
            if name in URL_ATTRS:
                if low.startswith(("javascript:", "vbscript:", "data:text", "//")):
                    self.problems.append(f"{tag}[{name}={value}]")
                if "evil.example" in low:
                    self.problems.append(f"{tag}[{name}={value}] fetches from elsewhere")
            if name == "style" and re.search(r"url\(|expression|behavior|\\|position", low):
                self.problems.append(f"{tag}[style={value}]")
            if name == "srcdoc":
                self.problems.append(f"{tag}[srcdoc]")

    def _ours(self, tag: str, values: dict[str, str]) -> bool:
        if tag == "meta":
            return "http-equiv" not in values
        if not self.page:
            return tag == "link" and values.get("href", "").startswith("/static/webmail/body.css")
        if tag == "script":
            return values.get("src", "").startswith("/static/webmail/webmail.js")
        if tag == "link":
            return values.get("href", "").startswith("/static/webmail/")
        if tag == "iframe":
            return values.get("src", "").startswith("/mail/") and "sandbox" in values
        return tag in ("form", "input", "button")  # our own forms post to ourselves

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def problems(text: str, *, page: bool = True) -> list[str]:
    inspector = Inspector(page=page)
    inspector.feed(text)
    inspector.close()
    if page:
        for action in re.findall(r'<form[^>]*action="([^"]*)"', text):
            if not action.startswith("/"):
                inspector.problems.append(f"form action {action}")
    return inspector.problems


@pytest.mark.parametrize("vector", HTML_VECTORS)
def test_sanitiser_corpus(vector: str) -> None:
    result = clean_html(
        f"<p>before</p>{vector}<p>after</p>",
        cid_url=lambda cid: f"/mail/1/1/cid/{cid}",
        allow_remote=False,
    )
    assert problems(result.html, page=False) == [], result.html
    assert "alert(1)" not in re.sub(r">[^<]*<", "><", result.html)  # only as inert text


def test_sanitiser_allows_remote_images_only_when_asked() -> None:
    markup = '<img src="https://img.example/a.png"><img src="cid:a@b">'
    blocked = clean_html(markup, cid_url=lambda c: f"/c/{c}", allow_remote=False)
    assert blocked.blocked_images == 1 and "img.example" not in blocked.html
    assert 'src="/c/a@b"' in blocked.html
    allowed = clean_html(markup, cid_url=lambda c: None, allow_remote=True)
    assert "https://img.example/a.png" in allowed.html and "cid:" not in allowed.html


def _hostile_message() -> bytes:
    html = "<p>Hostile</p>" + "".join(HTML_VECTORS)
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    )
    return (
        'From: "<img src=x onerror=alert(1)>" <"<script>"@evil.example>\r\n'
        'To: alice@example.test, "</td><script>alert(1)</script>" <x@evil.example>\r\n'
        "Cc: =?utf-8?b?PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==?= <cc@evil.example>\r\n"
        "Reply-To: javascript:alert(1)\r\n"
        "Subject: <script>alert('subject')</script>"
        " =?utf-8?q?=3Cimg_src=3Dx_onerror=3Dalert(1)=3E?=\r\n"
        'Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <"><script>@evil.example>\r\n'
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'
        '--x\r\nContent-Type: multipart/alternative; boundary="y"\r\n\r\n'
        "--y\r\nContent-Type: text/plain\r\n\r\n<script>alert('text')</script> "
        'https://ok.example/"onmouseover="alert(1) javascript:alert(1)\r\n'
        f"--y\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--y--\r\n"
        "--x\r\nContent-Type: image/svg+xml\r\nContent-ID: <evil@svg>\r\n"
        'Content-Disposition: attachment; filename="\\"><img src=x onerror=alert(1)>.svg"\r\n\r\n'
        f"{svg.decode()}\r\n"
        "--x\r\nContent-Type: text/html\r\n"
        "Content-Disposition: attachment;"
        " filename*=utf-8''%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E.html\r\n\r\n"
        "<script>alert(1)</script>\r\n"
        "--x\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="../../etc/passwd"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(b'root:x:0:0').decode()}\r\n"
        '--x\r\nContent-Type: text/plain; name="=?utf-8?q?a=0D=0ASet-Cookie:_x=3D1.txt?="\r\n'
        "Content-Disposition: attachment\r\n\r\nhi\r\n"
        "--x--\r\n"
    ).encode()


async def test_hostile_message_renders_inert_everywhere(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    uid = await world.deliver(ALICE[0], _hostile_message())
    async with world.client() as client:
        csrf = await login(client)
        await client.post(
            "/settings", data={"csrf": csrf, "prefer_html": "1", "threads": "1", "page_size": "50"}
        )
        pages = {
            "list": await client.get(f"/mail/{inbox}"),
            "read": await client.get(f"/mail/{inbox}/{uid}"),
            "read-text": await client.get(f"/mail/{inbox}/{uid}?html=0"),
            "read-images": await client.get(f"/mail/{inbox}/{uid}?images=1"),
            "search": await client.get("/search?q=hostile"),
            "reply": await client.get(f"/compose?reply={inbox}.{uid}&all=1"),
            "forward": await client.get(f"/compose?forward={inbox}.{uid}"),
        }
        for name, response in pages.items():
            assert response.status_code == 200, name
            assert problems(response.text) == [], name
            assert "script-src 'self'" in response.headers["content-security-policy"], name
        assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in pages["read"].text
        for query in ("", "?images=1"):
            body = await client.get(f"/mail/{inbox}/{uid}/body{query}")
            assert problems(body.text, page=False) == []
            csp = body.headers["content-security-policy"]
            assert "script" not in csp.replace("sandbox", "") and "default-src 'none'" in csp
        links = re.findall(rf'href="(/mail/{inbox}/{uid}/part/[^"]+)"', pages["read"].text)
        assert len(links) == 4
        for link in links:
            part = await client.get(link)
            disposition = part.headers["content-disposition"]
            assert disposition.startswith("attachment; filename=")
            assert "\r" not in disposition and "\n" not in disposition
            assert "/" not in disposition.split("filename*=")[0].split("filename=")[1]
            assert part.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in part.headers["content-security-policy"]
        svg = await client.get(f"/mail/{inbox}/{uid}/cid/evil%40svg")
        assert svg.headers["content-security-policy"].startswith("default-src 'none'")
        assert "sandbox" in svg.headers["content-security-policy"]
