"""Mailbox providers whose domains belong to the public, not to one organization.

No organization may verify these: verifying ``gmail.com`` would let one customer claim
every Gmail user. The list holds the consumer mailbox domains that the providers
themselves offer at sign-up, as their own help and sign-up pages name them (Google,
Microsoft, Yahoo, Apple, AOL, Proton, GMX and WEB.DE, Mail.ru, Yandex, Zoho, Fastmail,
Tuta, Tencent QQ, NetEase, Naver, Kakao (Daum), and Japan's carrier and ISP mailboxes).
It is deliberately limited to providers that hand out mailboxes to anyone; hosts add
more through :attr:`nulabpass.domains.DomainPolicy.extra_free_mail_domains`.
"""

from __future__ import annotations

__all__ = ["FREE_MAIL_DOMAINS"]

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        # Google
        "gmail.com",
        "googlemail.com",
        # Microsoft
        "outlook.com",
        "outlook.jp",
        "hotmail.com",
        "hotmail.co.jp",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "hotmail.it",
        "hotmail.es",
        "live.com",
        "live.jp",
        "live.co.uk",
        "live.fr",
        "msn.com",
        # Yahoo
        "yahoo.com",
        "yahoo.co.jp",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "yahoo.it",
        "yahoo.es",
        "yahoo.ca",
        "yahoo.com.au",
        "ymail.com",
        "rocketmail.com",
        "ybb.ne.jp",
        # Apple
        "icloud.com",
        "me.com",
        "mac.com",
        # AOL
        "aol.com",
        "aim.com",
        # Proton
        "proton.me",
        "protonmail.com",
        "protonmail.ch",
        "pm.me",
        # GMX and WEB.DE
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "gmx.at",
        "gmx.ch",
        "web.de",
        "mail.com",
        # Mail.ru
        "mail.ru",
        "inbox.ru",
        "list.ru",
        "bk.ru",
        # Yandex
        "yandex.com",
        "yandex.ru",
        "ya.ru",
        # Zoho, Fastmail, Tuta, HEY
        "zohomail.com",
        "fastmail.com",
        "fastmail.fm",
        "tutanota.com",
        "tutanota.de",
        "tuta.io",
        "tuta.com",
        "hey.com",
        # Tencent and NetEase
        "qq.com",
        "foxmail.com",
        "163.com",
        "126.com",
        "yeah.net",
        # Korea
        "naver.com",
        "daum.net",
        "hanmail.net",
        # Japan: carrier and ISP mailboxes
        "docomo.ne.jp",
        "ezweb.ne.jp",
        "au.com",
        "softbank.ne.jp",
        "i.softbank.jp",
        "nifty.com",
        "biglobe.ne.jp",
        "ocn.ne.jp",
        "so-net.ne.jp",
    }
)
