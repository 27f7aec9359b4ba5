"""The built-in email copy, in English and Japanese.

Each email is written once as structured copy (greeting, paragraphs, bullet lists, one
action, a footer) and turned into both a plain-text and an HTML :class:`MailTemplate`,
so the two parts of a message always say the same thing. Hosts replace any of them
through :class:`~nulabpass.mail.TemplateCatalog`.

Copy strings are :meth:`str.format` sources: ``{org_name}`` is a placeholder filled at
render time. The HTML builder escapes the literal copy here; the renderer escapes the
values.
"""

# Japanese copy uses full-width parentheses, the typographic norm in Japanese text.
# ruff: noqa: RUF001

from __future__ import annotations

import html
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from nulabpass.mail._model import MailTemplate

__all__ = ["DEFAULT_LINK_PATHS", "DEFAULT_TEMPLATES", "TEMPLATE_PARAMS"]


#: The parameters each built-in template requires. ``token`` is required by the
#: templates whose link proves who is acting (accepting an invitation, answering a
#: consent request); it only ever appears inside the link.
TEMPLATE_PARAMS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "invitation": frozenset(
            {"org_name", "inviter_name", "display_name", "token", "expires_at"}
        ),
        "conversion_request": frozenset({"org_name", "display_name", "token", "expires_at"}),
        "trial_ending": frozenset({"org_name", "trial_ends_at"}),
        "trial_expired": frozenset({"org_name"}),
        "plan_ended": frozenset({"org_name"}),
        "account_released": frozenset({"org_name", "display_name"}),
        "domain_record_missing": frozenset({"org_name", "domain", "grace_ends_at"}),
        "saml_metadata_updated": frozenset({"org_name", "metadata_url"}),
        "saml_metadata_pending": frozenset({"org_name", "metadata_url", "reason"}),
        "saml_metadata_rejected": frozenset({"org_name", "metadata_url"}),
        "saml_metadata_refresh_failed": frozenset({"org_name", "metadata_url", "error_code"}),
    }
)

#: Where each built-in template's ``{link}`` points, relative to the host's base URL.
#: Hosts mount their pages elsewhere by passing ``link_paths`` to the catalog.
DEFAULT_LINK_PATHS: Mapping[str, str] = MappingProxyType(
    {
        "invitation": "/invitations/accept",
        "conversion_request": "/account-conversions/respond",
        "trial_ending": "/admin/plan",
        "trial_expired": "/admin/plan",
        "plan_ended": "/admin/plan",
        "account_released": "/signin",
        "domain_record_missing": "/admin/domains",
        "saml_metadata_updated": "/admin/saml",
        "saml_metadata_pending": "/admin/saml",
        "saml_metadata_rejected": "/admin/saml",
        "saml_metadata_refresh_failed": "/admin/saml",
    }
)


@attrs.frozen(slots=True)
class _Action:
    """The email's one call to action: a link, introduced in text, a button in HTML."""

    text_lead: str
    button: str


@attrs.frozen(slots=True)
class _Copy:
    subject: str
    greeting: str
    blocks: tuple[str | tuple[str, ...] | _Action, ...]
    footer: str


@attrs.frozen(slots=True)
class _Chrome:
    """Words that surround every email of one language."""

    bullet: str
    button_fallback: str


_CHROME = {
    "en": _Chrome(
        bullet="- ",
        button_fallback="If the button does not work, copy this link into your browser:",
    ),
    "ja": _Chrome(
        bullet="・",
        button_fallback="ボタンが機能しない場合は、次のURLをブラウザに貼り付けてください。",
    ),
}

# Inline styles only: many mail clients drop <style> blocks, and CSS braces would also
# have to be doubled in format strings.
_BODY_STYLE = (
    "margin:0;padding:24px;background-color:#f4f5f7;color:#1f2328;"
    "font-family:-apple-system,'Segoe UI','Hiragino Sans','Meiryo',Arial,sans-serif;"
    "font-size:15px;line-height:1.7;"
)
_CARD_STYLE = (
    "max-width:560px;margin:0 auto;padding:32px;background-color:#ffffff;"
    "border:1px solid #d8dee4;border-radius:6px;"
)
_BUTTON_STYLE = (
    "display:inline-block;padding:12px 24px;background-color:#1f6feb;color:#ffffff;"
    "text-decoration:none;border-radius:6px;font-weight:bold;"
)
_SMALL_STYLE = "font-size:13px;color:#57606a;"
_LINK_STYLE = "color:#1f6feb;word-break:break-all;"


def _text(copy: _Copy, chrome: _Chrome) -> str:
    parts = [copy.greeting]
    for block in copy.blocks:
        if isinstance(block, _Action):
            parts.append(f"{block.text_lead}\n{{link}}")
        elif isinstance(block, tuple):
            parts.append("\n".join(chrome.bullet + item for item in block))
        else:
            parts.append(block)
    parts.append(copy.footer)
    return "\n\n".join(parts) + "\n"


def _html(copy: _Copy, chrome: _Chrome, language: str) -> str:
    def esc(literal: str) -> str:
        # Escapes the copy itself; braces pass through, so placeholders survive.
        return html.escape(literal, quote=False)

    body = [f"<p>{esc(copy.greeting)}</p>"]
    for block in copy.blocks:
        if isinstance(block, _Action):
            body.append(
                f'<p style="margin:28px 0;"><a href="{{link}}" style="{_BUTTON_STYLE}">'
                f"{esc(block.button)}</a></p>"
            )
            body.append(
                f'<p style="{_SMALL_STYLE}">{esc(chrome.button_fallback)}<br>'
                f'<a href="{{link}}" style="{_LINK_STYLE}">{{link}}</a></p>'
            )
        elif isinstance(block, tuple):
            items = "".join(f"<li>{esc(item)}</li>" for item in block)
            body.append(f"<ul>{items}</ul>")
        else:
            body.append(f"<p>{esc(block)}</p>")
    body.append('<hr style="border:none;border-top:1px solid #d8dee4;margin:28px 0 16px;">')
    body.append(f'<p style="{_SMALL_STYLE}">{esc(copy.footer)}</p>')
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{language}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(copy.subject)}</title>\n"
        "</head>\n"
        f'<body style="{_BODY_STYLE}">\n'
        f'<div style="{_CARD_STYLE}">\n' + "\n".join(body) + "\n</div>\n</body>\n</html>\n"
    )


def _template(copy: _Copy, language: str) -> MailTemplate:
    chrome = _CHROME[language]
    return MailTemplate(
        subject=copy.subject,
        text=_text(copy, chrome),
        html=_html(copy, chrome, language),
    )


# ---------------------------------------------------------------------------------------
# English

_EN_ADMIN_FOOTER = "You are receiving this email as an administrator of {org_name}."
_EN_CHOOSE_PLAN = _Action(text_lead="To choose a plan, open this link:", button="Choose a plan")

_EN: dict[str, _Copy] = {
    "invitation": _Copy(
        subject="{inviter_name} invited you to join {org_name}",
        greeting="Hello {display_name},",
        blocks=(
            "{inviter_name} has invited you to join {org_name}. An account managed by "
            "{org_name} has been created for you; you will sign in with your "
            "organization's single sign-on (SSO).",
            _Action(
                text_lead="To accept the invitation, open this link:",
                button="Accept invitation",
            ),
            "This invitation expires on {expires_at}. After that, ask an administrator "
            "of {org_name} to send you a new one.",
        ),
        footer="If you were not expecting this invitation, you can ignore this email. "
        "The account stays inactive unless you accept.",
    ),
    "conversion_request": _Copy(
        subject="{org_name} asks to manage your account",
        greeting="Hello {display_name},",
        blocks=(
            "{org_name} has asked to turn your account into an account managed by the "
            "organization. If you accept:",
            (
                "you will sign in with {org_name}'s single sign-on (SSO) instead of your "
                "password;",
                "administrators of {org_name} will be able to change, deactivate or "
                "delete your account;",
                "your account will belong to {org_name} only, and your memberships in "
                "other organizations will end.",
            ),
            _Action(
                text_lead="To accept or decline, open this link:",
                button="Review the request",
            ),
            "Nothing changes unless you accept. This request expires on {expires_at}.",
        ),
        footer="If you do not recognize this request, decline it or ignore this email.",
    ),
    "trial_ending": _Copy(
        subject="The free trial for {org_name} ends soon",
        greeting="Hello,",
        blocks=(
            "The free trial of the enterprise identity features for {org_name} (single "
            "sign-on, verified domains, managed accounts, provisioning and audit logs) "
            "ends on {trial_ends_at}.",
            "When the trial ends without a paid plan, these features stop and managed "
            "accounts can no longer sign in to any product. To keep them running, "
            "choose a paid plan before then.",
            _EN_CHOOSE_PLAN,
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
    "trial_expired": _Copy(
        subject="The free trial for {org_name} has ended",
        greeting="Hello,",
        blocks=(
            "The free trial of the enterprise identity features for {org_name} has "
            "ended without a paid plan.",
            "Single sign-on, verified domains, managed accounts, provisioning and audit "
            "logs are now stopped, and managed accounts can no longer sign in to any "
            "product. Accounts that {org_name} does not manage can still sign in with "
            "their passwords.",
            "Choose a paid plan to restore these features and your managed accounts' access.",
            _EN_CHOOSE_PLAN,
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
    "plan_ended": _Copy(
        subject="The plan for {org_name} has ended",
        greeting="Hello,",
        blocks=(
            "The paid plan of {org_name} for the enterprise identity features has ended, "
            "and the features have stopped.",
            "The accounts that {org_name} managed have been released: they are now "
            "personal accounts of their owners, who have been signed out and told by "
            "email how to sign in again.",
            "To use single sign-on, managed accounts, provisioning and audit logs again, "
            "subscribe to a plan.",
            _EN_CHOOSE_PLAN,
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
    "account_released": _Copy(
        subject="Your account is no longer managed by {org_name}",
        greeting="Hello {display_name},",
        blocks=(
            "Your account is no longer managed by {org_name}. It is now your personal "
            "account, and you have been signed out.",
            "From now on, sign in with your email address and a password instead of "
            "{org_name}'s single sign-on. If you have never set a password, use "
            '"Forgot password" on the sign-in page to create one.',
            _Action(text_lead="To sign in, open this link:", button="Sign in"),
        ),
        footer="If you have questions about this change, contact an administrator of {org_name}.",
    ),
    "domain_record_missing": _Copy(
        subject="Action required: the DNS record verifying {domain} is missing",
        greeting="Hello,",
        blocks=(
            "We could not find the DNS TXT record that proves {org_name} controls the "
            "domain {domain}. It may have been removed or changed.",
            "Restore the record before {grace_ends_at}. If it is still missing then, "
            "{domain} will no longer be verified for {org_name}, and new managed "
            "accounts can't be created with addresses at {domain}.",
            _Action(
                text_lead="The domain settings show the exact record to publish:",
                button="Open domain settings",
            ),
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
    "saml_metadata_updated": _Copy(
        subject="The single sign-on settings of {org_name} were updated",
        greeting="Hello,",
        blocks=(
            "The identity provider settings of {org_name} were updated from the metadata "
            "published at {metadata_url}. Members keep signing in as before.",
            "If your organization did not expect a change at its identity provider, "
            "review the settings now.",
            _Action(
                text_lead="The single sign-on settings show what is in force:",
                button="Open single sign-on settings",
            ),
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
    "saml_metadata_pending": _Copy(
        subject="Action required: new identity provider certificates for {org_name}",
        greeting="Hello,",
        blocks=(
            "The metadata published at {metadata_url} now lists different signing "
            "certificates (or another entity ID) for the identity provider of {org_name}, "
            "and the document is not signed by a certificate {org_name} already trusts "
            "({reason}).",
            "The settings in force stay as they are until an administrator reviews the "
            "new document and approves or rejects it. If the identity provider really "
            "changed its certificate, sign-in may fail until the change is approved.",
            _Action(
                text_lead="Review the new document in the single sign-on settings:",
                button="Review the change",
            ),
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
    "saml_metadata_rejected": _Copy(
        subject="A change of the single sign-on settings of {org_name} was rejected",
        greeting="Hello,",
        blocks=(
            "An administrator rejected the identity provider metadata fetched from "
            "{metadata_url}. The settings in force for {org_name} stay as they are, and "
            "the same document will not be proposed again.",
            _Action(
                text_lead="The single sign-on settings show what is in force:",
                button="Open single sign-on settings",
            ),
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
    "saml_metadata_refresh_failed": _Copy(
        subject="The identity provider metadata of {org_name} could not be refreshed",
        greeting="Hello,",
        blocks=(
            "We could not refresh the identity provider metadata of {org_name} from "
            "{metadata_url} (error {error_code}). The settings in force stay as they are, "
            "and we will keep trying.",
            "If the identity provider moved its metadata, update the metadata URL.",
            _Action(
                text_lead="The single sign-on settings show the latest attempt:",
                button="Open single sign-on settings",
            ),
        ),
        footer=_EN_ADMIN_FOOTER,
    ),
}

# ---------------------------------------------------------------------------------------
# Japanese

_JA_ADMIN_GREETING = "{org_name} 管理者様"
_JA_ADMIN_FOOTER = "このメールは、{org_name}の管理者にお送りしています。"
_JA_CHOOSE_PLAN = _Action(
    text_lead="プランの選択は、次のリンクから行えます。", button="プランを選択する"
)

_JA: dict[str, _Copy] = {
    "invitation": _Copy(
        subject="{inviter_name}さんから{org_name}への招待が届いています",
        greeting="{display_name} 様",
        blocks=(
            "{inviter_name}さんが、あなたを{org_name}に招待しました。{org_name}が管理する"
            "アカウントが作成されており、ログインには組織のシングルサインオン（SSO）を"
            "使用します。",
            _Action(
                text_lead="招待を承認するには、次のリンクを開いてください。",
                button="招待を承認する",
            ),
            "この招待の有効期限は{expires_at}です。期限が過ぎた場合は、{org_name}の"
            "管理者に招待の再送を依頼してください。",
        ),
        footer="このメールに心当たりがない場合は、破棄してください。招待を承認しない限り、"
        "アカウントは有効になりません。",
    ),
    "conversion_request": _Copy(
        subject="{org_name}からアカウント管理の承認依頼が届いています",
        greeting="{display_name} 様",
        blocks=(
            "{org_name}から、あなたのアカウントを組織が管理するアカウントに切り替えたい"
            "という依頼が届きました。承認すると、次のようになります。",
            (
                "ログインには、パスワードではなく{org_name}のシングルサインオン（SSO）を"
                "使用します。",
                "{org_name}の管理者が、アカウントの変更、無効化、削除を行えるようになります。",
                "アカウントは{org_name}だけに所属し、ほかの組織への所属は解除されます。",
            ),
            _Action(
                text_lead="承認または拒否は、次のリンクから選択してください。",
                button="依頼を確認する",
            ),
            "承認しない限り、アカウントは変更されません。この依頼の有効期限は{expires_at}です。",
        ),
        footer="この依頼に心当たりがない場合は、拒否するか、このメールを破棄してください。",
    ),
    "trial_ending": _Copy(
        subject="{org_name}の無料トライアルがまもなく終了します",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "{org_name}のエンタープライズ向けID管理機能（シングルサインオン、ドメイン認証、"
            "管理アカウント、プロビジョニング、監査ログ）の無料トライアルは、"
            "{trial_ends_at}に終了します。",
            "有料プランに申し込まずにトライアルが終了すると、これらの機能は停止し、"
            "管理アカウントはすべての製品にログインできなくなります。引き続きご利用"
            "いただくには、終了日時までに有料プランをお申し込みください。",
            _JA_CHOOSE_PLAN,
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
    "trial_expired": _Copy(
        subject="{org_name}の無料トライアルが終了しました",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "{org_name}のエンタープライズ向けID管理機能の無料トライアルは、有料プランへの"
            "申し込みがないまま終了しました。",
            "シングルサインオン、ドメイン認証、管理アカウント、プロビジョニング、監査ログは"
            "停止しており、管理アカウントはすべての製品にログインできません。{org_name}が"
            "管理していないアカウントは、これまでどおりパスワードでログインできます。",
            "有料プランにお申し込みいただくと、これらの機能と管理アカウントのログインが"
            "再開します。",
            _JA_CHOOSE_PLAN,
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
    "plan_ended": _Copy(
        subject="{org_name}のプランが終了しました",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "{org_name}のエンタープライズ向けID管理機能の有料プランが終了し、機能は停止しました。",
            "{org_name}が管理していたアカウントは管理対象から外れ、各利用者の個人アカウント"
            "になりました。利用者はログアウトされ、再びログインする方法をメールでお知らせ"
            "しています。",
            "シングルサインオン、管理アカウント、プロビジョニング、監査ログを再びご利用"
            "いただくには、プランにお申し込みください。",
            _JA_CHOOSE_PLAN,
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
    "account_released": _Copy(
        subject="アカウントが{org_name}の管理対象から外れました",
        greeting="{display_name} 様",
        blocks=(
            "あなたのアカウントは{org_name}の管理対象から外れ、個人のアカウントになり"
            "ました。現在はログアウトされた状態です。",
            "今後は{org_name}のシングルサインオン（SSO）ではなく、メールアドレスと"
            "パスワードでログインしてください。パスワードを設定したことがない場合は、"
            "ログイン画面の「パスワードをお忘れの方」から設定できます。",
            _Action(
                text_lead="ログインするには、次のリンクを開いてください。",
                button="ログインする",
            ),
        ),
        footer="この変更についてご不明な点は、{org_name}の管理者にお問い合わせください。",
    ),
    "domain_record_missing": _Copy(
        subject="【対応のお願い】{domain}の認証用DNSレコードが見つかりません",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "{org_name}が{domain}を所有していることを証明するDNS TXTレコードが見つかり"
            "ませんでした。レコードが削除されたか、変更された可能性があります。",
            "{grace_ends_at}までにレコードを元に戻してください。その時点でもレコードが"
            "見つからない場合、{domain}は{org_name}の認証済みドメインではなくなり、"
            "{domain}のメールアドレスで新しい管理アカウントを作成できなくなります。",
            _Action(
                text_lead="公開すべきレコードは、ドメイン設定画面で確認できます。",
                button="ドメイン設定を開く",
            ),
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
    "saml_metadata_updated": _Copy(
        subject="{org_name}のシングルサインオン設定が更新されました",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "{org_name}のIDプロバイダー設定が、メタデータURL（{metadata_url}）で公開"
            "されているメタデータにより更新されました。メンバーはこれまでどおり"
            "ログインできます。",
            "IDプロバイダー側で変更を予定していなかった場合は、設定をすぐにご確認ください。",
            _Action(
                text_lead="現在の設定は、シングルサインオン設定画面で確認できます。",
                button="シングルサインオン設定を開く",
            ),
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
    "saml_metadata_pending": _Copy(
        subject="【対応のお願い】{org_name}のIDプロバイダー証明書が変更されています",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "メタデータURL（{metadata_url}）で公開されているメタデータに、{org_name}の"
            "IDプロバイダーの新しい署名証明書（または別のエンティティID）が記載されて"
            "いますが、{org_name}が信頼している証明書による署名がありません（{reason}）。",
            "管理者が新しいメタデータを確認して承認または却下するまで、現在の設定が"
            "使われます。IDプロバイダーが実際に証明書を変更した場合、承認されるまで"
            "ログインに失敗することがあります。",
            _Action(
                text_lead="新しいメタデータは、シングルサインオン設定画面で確認できます。",
                button="変更を確認する",
            ),
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
    "saml_metadata_rejected": _Copy(
        subject="{org_name}のシングルサインオン設定の変更が却下されました",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "メタデータURL（{metadata_url}）から取得したIDプロバイダーのメタデータを、"
            "管理者が却下しました。"
            "{org_name}の現在の設定は変わらず、同じメタデータが再び提案されることは"
            "ありません。",
            _Action(
                text_lead="現在の設定は、シングルサインオン設定画面で確認できます。",
                button="シングルサインオン設定を開く",
            ),
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
    "saml_metadata_refresh_failed": _Copy(
        subject="{org_name}のIDプロバイダーのメタデータを更新できませんでした",
        greeting=_JA_ADMIN_GREETING,
        blocks=(
            "メタデータURL（{metadata_url}）から{org_name}のIDプロバイダーのメタデータを"
            "更新できませんでした（エラー：{error_code}）。現在の設定は変わらず、更新は引き続き"
            "試みます。",
            "IDプロバイダーがメタデータの公開場所を変更した場合は、メタデータURLを"
            "更新してください。",
            _Action(
                text_lead="直近の試行結果は、シングルサインオン設定画面で確認できます。",
                button="シングルサインオン設定を開く",
            ),
        ),
        footer=_JA_ADMIN_FOOTER,
    ),
}

#: The built-in templates, keyed by ``(template name, language)``.
DEFAULT_TEMPLATES: Mapping[tuple[str, str], MailTemplate] = MappingProxyType(
    {
        (name, language): _template(copy, language)
        for language, copies in (("en", _EN), ("ja", _JA))
        for name, copy in copies.items()
    }
)
