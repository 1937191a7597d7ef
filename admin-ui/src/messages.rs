//! The console's own words: every refusal, validation failure and notice the admin console
//! and the admin API write, and the sentence each kind of domain error is shown as, in
//! Japanese and English. [`Msg::render`] puts a message in the reader's language; a domain
//! error's own (English) text travels beside it as a [`Message`]'s detail.

use std::fmt;

use kizuna_core::web::Lang;

/// Defines [`Msg`] from one table: each message, what it names (its parameters, written
/// `{name}` in the texts), and its Japanese and English text.
macro_rules! catalogue {
    ($( $name:ident $({ $($param:ident),+ })? => $ja:literal, $en:literal; )+) => {
        /// A message of the console, with the values it names.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Msg {
            $( $name $({ $($param: String),+ })?, )+
        }

        impl Msg {
            /// The Japanese and English texts, and each parameter's name and value.
            fn parts(&self) -> (&'static str, &'static str, Vec<(&'static str, &str)>) {
                match self {
                    $( Msg::$name $({ $($param),+ })? => (
                        $ja,
                        $en,
                        vec![$($( (stringify!($param), $param.as_str()) ),+)?],
                    ), )+
                }
            }
        }

        /// Every message: its name, parameters, Japanese and English text.
        #[cfg(test)]
        const TABLE: &[(&str, &[&str], &str, &str)] = &[
            $( (stringify!($name), &[$($(stringify!($param)),+)?], $ja, $en), )+
        ];
    };
}

catalogue! {
    // Signing in to the console, and the admin API's tokens.
    FormExpired => "フォームの有効期限が切れたか、このサイトから送信されていません。ページを再読み込みしてやり直してください。", "The form expired or did not come from this site. Reload the page and try again.";
    SessionEnded => "コンソールのセッションが終了しています。もう一度サインインしてください。", "Your console session has ended. Sign in again.";
    SignInNotFinished { error, description } => "サインインが完了しませんでした（{error} {description}）。", "the sign-in did not finish: {error} {description}";
    SignInIncomplete => "サインインの応答に認可コードまたは状態の値がありません。", "code and state are required";
    SignInOtherBrowser => "このサインインは、このブラウザーで開始されたものではありません。", "this sign-in was not started in this browser";
    SignInUnknown => "このサインインは不明か、すでに使用されています。もう一度サインインしてください。", "this sign-in is unknown or was already used";
    SignInExpired => "サインインに時間がかかりすぎました。もう一度サインインしてください。", "this sign-in took too long";
    CodeExchangeFailed => "認可コードの交換に失敗しました。", "the code exchange failed";
    NonceMismatch => "ID トークンのノンスが一致しません。", "the ID token nonce does not match";
    NoStaffRole => "このアカウントにはスタッフの役割がありません。管理コンソールは市の職員と組織の管理者のためのものです。", "this account holds no staff role; the console is for city staff and organization administrators";
    SignInTooWeak { needed, reached } => "あなたの役割では、管理コンソールに {needed} のサインインが必要ですが、今回のサインインは {reached} でした。アカウントのページでハードウェアセキュリティキー（パスキー）を追加してください。", "the console needs a {needed} sign-in for your roles; your sign-in reached {reached}. Add a hardware security key (passkey) on your account page.";
    BearerTokenRequired => "アクセストークン（ベアラートークン）が必要です。", "a bearer access token is required";
    InvalidToken => "アクセストークンが無効か、期限切れか、取り消されています。", "the access token is not valid, expired or revoked";
    StepUp { acr } => "あなたの役割には {acr} のサインインが必要です。より高い認証レベル（AAL）を求めてサインインし直してください。", "your roles need a sign-in at {acr}; ask for it with acr_values";
    InsufficientScope => "このアクセストークンには、この操作に必要なスコープがありません。", "The token lacks the scope this needs.";
    NoStaffRights => "このアクセストークンで使えるスタッフの役割がありません。", "The token carries no staff role.";
    NotPermitted => "この操作を行う権限がありません。", "You are not allowed to do this.";

    // Error pages, and what any request may meet.
    TitleNotFound => "見つかりません", "Not found";
    TitleNotAllowed => "できません", "Not allowed";
    TitleCannot => "実行できません", "Cannot do that";
    TitleError => "エラー", "Error";
    TitleCheckInput => "入力を確認してください", "Check the input";
    TitleUnavailable => "一時的に利用できません", "Temporarily unavailable";
    Internal => "内部エラーが発生しました。時間をおいてもう一度お試しください。", "internal error";
    Unavailable => "データベースに一時的に接続できません。しばらくしてからもう一度お試しください。", "The database is unreachable for the moment; try again shortly.";
    Stale => "読み込んだ後にほかの方が変更しました。新しい内容を表示しています。", "this was changed by someone else since you loaded it; the newer version is shown";
    MalformedBody => "リクエストの本文を読み取れません。", "The request body cannot be read.";
    FormHasNoVersion => "フォームに版の情報がありません。ページを再読み込みしてやり直してください。", "the form has no version";
    VersionRequired => "編集するには、編集のもとにした版を指定してください。", "version is required for an edit";
    SearchTooLong { length, max } => "検索語が {length} 文字あります。{max} 文字以内で入力してください。", "the search text is {length} characters long; at most {max} are accepted";
    NoAction { action } => "操作 {action} はありません。", "not found: action {action}";

    // What a finished action says on the page it returns to.
    Revoked => "失効しました。", "Revoked.";
    Held => "一時停止しました。", "Suspended (on hold).";
    Released => "一時停止を解除しました。", "Released from hold.";
    Saved => "保存しました。", "Saved.";
    Disabled => "無効にしました。", "Disabled.";
    Enabled => "有効にしました。", "Enabled.";
    Approved => "承認しました。", "Approved.";
    SessionsEnded => "セッションを終了しました。", "Sessions ended.";
    FactorsReset => "認証要素をリセットしました。", "Factors reset.";
    RoleChanged => "役割を変更しました。", "Role changed.";
    Created => "作成しました。", "Created.";
    TokensVoided => "トークンを無効にしました。", "Tokens voided.";
    ProofingRecorded => "本人確認を記録しました。", "Identity check recorded.";

    // Things looked up and not found (or out of the caller's reach).
    NotFound => "お探しのものは見つかりません。", "Not found.";
    NoAccount { id } => "アカウント {id} は見つかりません。", "not found: account {id}";
    NoAccounts => "対象のアカウントは見つかりません。", "not found: accounts";
    NoAuditEntry { id } => "監査記録 {id} は見つかりません。", "not found: audit entry {id}";
    NoAuditLog => "監査ログは見つかりません。", "not found: audit log";
    NoCertificate { serial } => "証明書 {serial} は見つかりません。", "not found: certificate {serial}";
    NoClient { id } => "クライアント {id} は見つかりません。", "not found: client {id}";
    NoDevice { id } => "機器 {id} は見つかりません。", "not found: device {id}";
    NoEnrollmentToken { id } => "登録トークン {id} は見つかりません。", "not found: enrollment token {id}";
    NoOrg { id } => "組織 {id} は見つかりません。", "not found: organization {id}";
    NoOrgs => "対象の組織は見つかりません。", "not found: organizations";
    NoUpstream { id } => "外部IdP {id} は見つかりません。", "not found: upstream {id}";

    // Certificates, devices and enrollment tokens.
    NameOneTarget => "証明書のシリアル、機器ID、組織IDのいずれか一つを指定してください。", "Name one certificate serial, device id or organization id.";
    NameExactlyOneTarget => "証明書のシリアル、機器ID（必要に応じて組織ID）、組織IDのいずれか一つだけを指定してください。", "name exactly one of serial, device_id (with org_id if needed) or org_id";
    TargetsChanged => "確認後に対象の証明書が変わりました。もう一度確認してください。", "The certificates changed since you confirmed; review them again.";
    NothingToRevoke => "失効できる証明書はありません（すでに失効済みです）。", "There is nothing to revoke: the certificates are already revoked.";
    AlreadyRevoked { kind, id } => "失効できる証明書はありません。{id} の証明書はすべて失効済みです。", "nothing to revoke: the {kind} {id}'s certificates are already revoked";
    AlreadyRevokedOrHeld { kind, id } => "一時停止できる証明書はありません。{id} の証明書はすべて失効済みか一時停止中です。", "nothing to revoke: the {kind} {id}'s certificates are already revoked or on hold";
    UnknownReason => "失効理由が正しくありません。", "The revocation reason is not valid.";
    OneTokenAtATime { command } => "コンソールで発行できるトークンは一度に一つです。まとめて発行するには {command} を使ってください。", "the console creates one token at a time; use `{command}` for batches";
    NoTokenSelected => "トークンが選択されていません。", "No token is selected.";
    CertificateUnparsable => "証明書を解析できません。", "the certificate cannot be parsed";

    // Clients.
    ConsoleClientForCityAdmins => "管理コンソール自身のクライアントは、市の管理者だけが変更できます。", "the console's own client is for city administrators";
    AdminScopeClientForCityAdmins => "管理用スコープを持つクライアントは、市の管理者だけが変更できます。", "a client with admin scopes is changed by city administrators only";
    AdminScopesForCityAdmins => "管理用スコープを持つクライアントを登録できるのは、市の管理者だけです。", "only city administrators register clients with admin scopes";
    ConsoleClientStaysOn => "管理コンソール自身のクライアントを無効にすると、すべての管理者がサインインできなくなります。", "disabling the console's own client would lock every administrator out";
    ClientNotPending { id, status } => "クライアント {id} は承認待ちではありません（現在の状態：{status}）。", "client {id} is {status}, not pending";
    ClientPending { id } => "クライアント {id} は承認待ちです。市の管理者の承認をお待ちください。", "client {id} is pending: a city administrator approves it";
    OneTlsClientAuthName => "クライアント証明書と照合する名前は、一つだけ指定してください。", "give exactly one tls_client_auth_* name (RFC 8705 §2.1.2)";
    MinAalRange => "必要な認証レベルは 0 から 3 で指定してください。", "min_aal must be 0 to 3";
    MinIalRange => "必要な身元確認レベルは 0 から 3 で指定してください。", "min_ial must be 0 to 3";
    QuotaWholeNumber => "1分あたりのリクエスト数は整数で入力してください。", "requests per minute must be a whole number";

    // Upstream identity providers.
    OrgDisabled { name } => "組織 {name} は無効になっています。", "organization {name} is disabled";
    TrustSetByCity => "信頼の上限とメールドメインは、市の管理者が設定します。", "the trust ceiling and the email domains are set by a city administrator";
    UpstreamNotPending { alias, status } => "外部IdP {alias} は承認待ちではありません（現在の状態：{status}）。", "upstream {alias} is {status}, not pending";
    UpstreamPending { alias } => "外部IdP {alias} は承認待ちです。市の管理者の承認をお待ちください。", "upstream {alias} is pending: a city administrator approves it";
    MaxIalRange => "信頼の上限の身元確認レベルは 1、2、3 のいずれかで指定してください。", "max_ial must be 1, 2 or 3";
    MaxAalRange => "信頼の上限の認証レベルは 1、2、3 のいずれかで指定してください。", "max_aal must be 1, 2 or 3";
    UnknownKeyType => "鍵の種類が正しくありません。", "The key type is not valid.";
    CeilingInvalid => "信頼の上限が正しくありません。", "The trust ceiling is not valid.";

    // Accounts, roles and reviews.
    CannotDisableSelf => "ご自身のアカウントは無効にできません。", "you cannot disable your own account";
    CannotGrantRole { role, scope } => "範囲 {scope} で役割 {role} を付与する権限がありません。", "you cannot grant the role {role} in scope {scope}";
    CannotWithdrawRole { role, scope } => "範囲 {scope} の役割 {role} を取り消す権限がありません。", "you cannot withdraw the role {role} in scope {scope}";
    CannotWithdrawOwnCityAdmin => "ご自身の市の管理者の役割は取り消せません。", "you cannot withdraw your own city-admin role";
    ProofingByRegistrar => "窓口での本人確認は、受付担当者ご本人のアカウントで記録してください。", "an in-person check is recorded by a registrar's own account";
    ProofingLevel => "確認のレベルは 2 か 3 で指定してください。", "level must be 2 or 3";
    UnknownRole => "役割が正しくありません。", "The role is not valid.";
    NoAccountSelected => "アカウントが選択されていません。", "No account is selected.";
    DaysNumber => "日数は数字で入力してください。", "days must be a number";
    DaysRange => "日数は 1 から 3650 までで指定してください。", "days must be 1 to 3650";

    // The audit log.
    ExportFormat { format } => "出力形式 {format} には対応していません。JSON（1行に1件）か CSV を指定してください。", "unknown export format {format}: use jsonl or csv";
    ChainVerified { count } => "{count} 件の記録を検証しました。問題はありません。", "ok: {count} entries verified";
    ChainBroken => "ハッシュチェーンが壊れています。", "The hash chain is broken.";
    ChainBrokenAt { seq, id } => "{seq} 番の記録（{id}）で壊れています。", "broken at entry {seq} ({id})";

    // Creating the first administrator.
    BootstrapFormExpired => "フォームの有効期限が切れました。ページを再読み込みしてやり直してください。", "The form expired or did not come from this site. Reload the page and try again.";
    BootstrapTokenInvalid => "このブートストラップトークンは無効か、期限切れか、使用済みです。サーバーを再起動すると新しいリンクが表示されます。", "This bootstrap token is unknown, expired or already used. Restarting the server prints a new link.";
    PasswordMismatch => "パスワードが一致しません。", "The passwords do not match.";
    PasswordTooShort => "パスワードは12文字以上にしてください。", "The password must be at least 12 characters.";
    EmailInvalid => "メールアドレスの形式が正しくありません。", "The email address is not valid.";
    UsernameInvalid => "ユーザー名は3〜64文字の英小文字・数字・. _ - @ で入力してください。", "The username must be 3–64 characters: letters, digits and . _ - @.";

    // The sentences domain errors are shown as (their own text follows as the detail).
    CaForbidden => "認証局がこの操作を許可していません。", "The certificate authority does not allow this.";
    CaConflict => "現在の状態では実行できません。", "This cannot be done in the current state.";
    CaInvalid => "証明書または機器の入力内容が正しくありません。", "The certificate or device details are not valid.";
    CertificateNotAllowed => "この証明書は発行できません。", "This certificate cannot be issued.";
    UnknownProfile => "この証明書プロファイルはありません。", "There is no such certificate profile.";
    BadCsr => "証明書署名要求（CSR）を使用できません。", "The certificate signing request (CSR) cannot be used.";
    ClientInvalid => "クライアントの登録内容が正しくありません。", "The client registration is not valid.";
    UpstreamAliasTaken => "この別名の外部IdPはすでに登録されています。", "An identity provider with this alias already exists.";
    UpstreamInvalid => "外部IdPの設定が正しくありません。", "The identity provider settings are not valid.";
    DiscoveryFailed => "発行者のディスカバリ文書を使用できません。", "The issuer's discovery document cannot be used.";
    IdentityBound => "この本人情報は、すでに別のアカウントに結び付けられています。", "This identity is already bound to another account.";
    ProofingInvalid => "本人確認の内容が正しくありません。", "The identity check is not valid.";
    QuotaInvalid => "リクエスト上限の値が正しくありません。", "The request quota is not valid.";
    ConsentTermsInvalid => "同意の条件（利用目的・期限・任意項目）が正しくありません。", "The consent terms (purpose, lifetime, optional claims) are not valid.";
    OrgNameTaken => "同じ名前の組織がすでにあります。", "An organization with this name already exists.";
    OrgInvalid => "組織の入力内容が正しくありません。", "The organization details are not valid.";
    UsernameTaken => "このユーザー名またはメールアドレスのアカウントはすでにあります。", "An account with this username or email address already exists.";
    AccountInvalid => "アカウントの入力内容が正しくありません。", "The account details are not valid.";
    FactorsInvalid => "認証要素を変更できません。", "The authentication factors cannot be changed.";
}

impl Msg {
    /// The message in `lang`, with its parameters filled in.
    pub fn render(&self, lang: Lang) -> String {
        let (ja, en, params) = self.parts();
        fill(lang.pick(ja, en), &params)
    }

    /// This message, followed by a domain error's own text.
    pub fn with_detail(self, detail: impl Into<String>) -> Message {
        Message {
            msg: self,
            detail: Some(detail.into()),
        }
    }
}

/// A text with each `{name}` replaced by its parameter's value, in one pass (so a value is
/// never read as a placeholder).
fn fill(text: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let param = after.find('}').and_then(|close| {
            params
                .iter()
                .find(|(name, _)| *name == &after[..close])
                .map(|(_, value)| (close, *value))
        });
        match param {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What the console says about a failure: a catalogue message and, for an error passed
/// through from a domain crate, that crate's own (English) text, shown beneath it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub msg: Msg,
    pub detail: Option<String>,
}

impl From<Msg> for Message {
    fn from(msg: Msg) -> Message {
        Message { msg, detail: None }
    }
}

/// The English message and its detail, for logs and the process's own errors.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg.render(Lang::En))?;
        match &self.detail {
            Some(detail) => write!(f, " ({detail})"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Latin-letter words a Japanese text may hold: protocol names and proper nouns.
    const ALLOWED_IN_JAPANESE: &[&str] = &[
        "URI", "HTTPS", "OIDC", "AAL", "IAL", "ID", "IdP", "PKCE", "CSV", "JSON", "PEM", "OCSP",
        "CRL", "ACME", "EST", "CSR",
    ];

    /// The `{name}` placeholders of a text.
    fn placeholders(text: &str) -> Vec<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect()
    }

    /// A text without its placeholders.
    fn without_placeholders(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some((before, after)) = rest.split_once('{') {
            out.push_str(before);
            rest = after.split_once('}').map_or("", |(_, tail)| tail);
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn every_message_has_japanese_and_english_text() {
        assert!(TABLE.len() > 100, "{}", TABLE.len());
        for (name, _, ja, en) in TABLE {
            assert!(!ja.trim().is_empty(), "{name} has no Japanese text");
            assert!(!en.trim().is_empty(), "{name} has no English text");
            assert_ne!(ja, en, "{name} is not translated");
        }
    }

    #[test]
    fn japanese_texts_hold_no_latin_words_but_parameters_and_protocol_names() {
        for (name, _, ja, _) in TABLE {
            let text = without_placeholders(ja);
            let words = text
                .split(|c: char| !c.is_ascii_alphabetic())
                .filter(|w| !w.is_empty());
            for word in words {
                assert!(
                    ALLOWED_IN_JAPANESE.contains(&word),
                    "{name}: {word:?} in {ja:?}"
                );
            }
        }
    }

    #[test]
    fn each_text_names_only_its_parameters_and_english_names_them_all() {
        for (name, params, ja, en) in TABLE {
            for used in placeholders(ja).into_iter().chain(placeholders(en)) {
                assert!(params.contains(&used), "{name} uses {{{used}}}");
            }
            // Japanese may leave out what only English grammar needs (a kind's noun).
            for param in *params {
                assert!(
                    placeholders(en).contains(param),
                    "{name} leaves out {param}"
                );
            }
        }
    }

    #[test]
    fn rendering_fills_the_parameters_in_the_readers_language() {
        let msg = Msg::ClientNotPending {
            id: "portal".into(),
            status: "{id}".into(),
        };
        assert_eq!(
            msg.render(Lang::Ja),
            "クライアント portal は承認待ちではありません（現在の状態：{id}）。"
        );
        assert_eq!(msg.render(Lang::En), "client portal is {id}, not pending");
        assert_eq!(Msg::Saved.render(Lang::Ja), "保存しました。");
    }

    #[test]
    fn a_message_with_a_detail_shows_it_after_the_english_sentence() {
        let said = Msg::ClientInvalid.with_detail("redirect URI must use https");
        assert_eq!(
            said.to_string(),
            "The client registration is not valid. (redirect URI must use https)"
        );
    }
}
