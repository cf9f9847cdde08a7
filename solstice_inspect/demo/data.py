"""The reference pipeline's data and operators: web/app events, parsed, filtered, enriched.

Records are plain dicts (they travel through Ray's object store between stages). The
generator is seeded, so a run is reproducible; ``malformed_rate`` > 0 makes some JSON
payloads broken on purpose, and :func:`parse_record` raises on them as a real parser
would.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "ShopApp/5.12.0 (iOS 18.1; iPhone15,2)",
    "ShopApp/5.11.3 (Android 14; SM-S918B)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
]
PATHS = ["/", "/search", "/category/shoes", "/category/jackets", "/product/{p}", "/cart",
         "/checkout", "/account/orders", "/help/returns"]  # fmt: skip
EVENT_TYPES = ["page_view"] * 8 + ["click"] * 4 + ["add_to_cart"] * 2 + ["purchase", "app_open"]
UTM = ["google", "newsletter", "instagram", "partner_blog", None, None, None]
CURRENCIES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.05}
# first octet of the client address -> country (a toy GeoIP table)
GEO = {10: "DE", 31: "NL", 51: "GB", 62: "FR", 81: "CH", 93: "ES", 100: "US", 151: "IT"}
BOT_RE = re.compile(r"bot|crawler|spider|slurp", re.IGNORECASE)
BROWSER_RE = [
    ("ShopApp", re.compile(r"ShopApp/([\d.]+)")),
    ("Firefox", re.compile(r"Firefox/([\d.]+)")),
    ("Chrome", re.compile(r"Chrome/([\d.]+)")),
    ("Safari", re.compile(r"Version/([\d.]+).*Safari")),
]
OS_RE = [("iOS", "iPhone|iOS"), ("Android", "Android"), ("Windows", "Windows"),
         ("macOS", "Mac OS X"), ("Linux", "Linux")]  # fmt: skip


def generate_split(
    split_index: int, size: int, *, seed: int = 7, malformed_rate: float = 0.0, start: float = 0.0
) -> list[dict[str, Any]]:
    """``size`` raw events of one source split: text fields as they arrive from a log.

    Examples
    --------
    >>> rows = generate_split(0, 3)
    >>> sorted(rows[0])[:4]
    ['client_ip', 'event_id', 'event_type', 'payload']
    """
    rnd = random.Random(seed * 1_000_003 + split_index)
    rows = []
    for i in range(size):
        etype = rnd.choice(EVENT_TYPES)
        user = rnd.randrange(5_000)
        product = rnd.randrange(1, 900)
        path = rnd.choice(PATHS).format(p=product)
        query = {"ref": rnd.choice(["home", "search", "email"])}
        utm = rnd.choice(UTM)
        if utm:
            query["utm_source"] = utm
        url = (
            "https://shop.example.com" + path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
        )
        payload: dict[str, Any] = {
            "product_id": product,
            "session": f"s{user:05d}{rnd.randrange(9)}",
        }
        if etype in ("add_to_cart", "purchase"):
            payload["price"] = round(rnd.uniform(4.0, 240.0), 2)
            payload["currency"] = rnd.choice(list(CURRENCIES))
            payload["quantity"] = rnd.randint(1, 3)
        text = json.dumps(payload)
        if malformed_rate and rnd.random() < malformed_rate:
            text = text[: rnd.randrange(3, len(text) - 2)]  # a truncated line, as logs have
        octet = rnd.choice(list(GEO))
        rows.append(
            {
                "event_id": f"ev{split_index:06d}{i:04d}",
                "ts": start + split_index + i / max(size, 1),
                "user_id": f"u{user:05d}",
                "event_type": etype,
                "url": url,
                "user_agent": rnd.choice(USER_AGENTS),
                "client_ip": ".".join(map(str, (octet, *rnd.choices(range(1, 255), k=3)))),
                "payload": text,
            }
        )
    return rows


def parse_record(raw: dict[str, Any]) -> dict[str, Any]:
    """Parse the JSON payload, the URL and the user agent of one raw event.

    Raises
    ------
    ValueError
        (``json.JSONDecodeError``) when the payload is not valid JSON.
    """
    payload = json.loads(raw["payload"])
    url = urlsplit(raw["url"])
    query = parse_qs(url.query)
    ua = raw["user_agent"]
    browser, version = "other", ""
    for name, rx in BROWSER_RE:
        m = rx.search(ua)
        if m:
            browser, version = name, m.group(1)
            break
    os_name = next((name for name, rx in OS_RE if re.search(rx, ua)), "other")
    return {
        "event_id": raw["event_id"],
        "ts": raw["ts"],
        "user_id": raw["user_id"],
        "event_type": raw["event_type"],
        "path": url.path,
        "utm_source": (query.get("utm_source") or [None])[0],
        "browser": browser,
        "browser_version": version,
        "os": os_name,
        "is_bot": bool(BOT_RE.search(ua)),
        "client_ip": raw["client_ip"],
        "product_id": int(payload.get("product_id", 0)),
        "session": str(payload.get("session", "")),
        "price": float(payload.get("price", 0.0)),
        "currency": payload.get("currency") or "EUR",
        "quantity": int(payload.get("quantity", 0)),
    }


def keep_record(rec: dict[str, Any]) -> bool:
    """The filter: drop bots and events that carry no product interaction."""
    return not rec["is_bot"] and rec["event_type"] != "app_open"


def enrich_record(rec: dict[str, Any]) -> dict[str, Any]:
    """Add country (toy GeoIP), revenue in EUR and a stable user segment."""
    octet = int(rec["client_ip"].split(".", 1)[0])
    revenue = rec["price"] * rec["quantity"] * CURRENCIES.get(rec["currency"], 1.0)
    bucket = int(hashlib.blake2s(rec["user_id"].encode(), digest_size=2).hexdigest(), 16) % 100
    segment = "loyal" if bucket < 15 else "returning" if bucket < 55 else "new"
    return {
        **rec,
        "country": GEO.get(octet, "unknown"),
        "revenue_eur": round(revenue, 2) if rec["event_type"] == "purchase" else 0.0,
        "segment": segment,
    }


#: what the sink writes (explicit: a split whose utm_source are all None still fits)
SINK_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.float64()),
        ("user_id", pa.string()),
        ("event_type", pa.string()),
        ("path", pa.string()),
        ("utm_source", pa.string()),
        ("browser", pa.string()),
        ("browser_version", pa.string()),
        ("os", pa.string()),
        ("is_bot", pa.bool_()),
        ("client_ip", pa.string()),
        ("product_id", pa.int64()),
        ("session", pa.string()),
        ("price", pa.float64()),
        ("currency", pa.string()),
        ("quantity", pa.int64()),
        ("country", pa.string()),
        ("revenue_eur", pa.float64()),
        ("segment", pa.string()),
    ]
)
