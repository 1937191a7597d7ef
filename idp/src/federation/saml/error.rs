//! Why a SAML message was refused: one variant per distinct refusal, each with a short
//! stable name for the audit log.

/// A refused SAML message, metadata document or binding value.
#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    #[error("the message is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the message declares a DTD or an entity, which SAML never needs")]
    Dtd,
    #[error("the message holds a processing instruction")]
    ProcessingInstruction,
    #[error("the message is not well-formed XML: {0}")]
    NotWellFormed(String),
    #[error("the HTTP-Redirect value could not be decoded: {0}")]
    Encoding(String),
    #[error("the document is not a {0}")]
    UnexpectedRoot(&'static str),
    #[error("two elements carry the ID {0:?}")]
    DuplicateId(String),
    #[error("the response holds {0} assertions; exactly one is accepted")]
    AssertionCount(usize),
    /// The signed element is not the one that would be used (signature wrapping).
    #[error("signature wrapping: {0}")]
    Wrapping(&'static str),
    #[error("neither the response nor its assertion is signed")]
    Unsigned,
    #[error("the signature is malformed: {0}")]
    SignatureStructure(&'static str),
    #[error("algorithm not accepted: {0}")]
    Algorithm(String),
    #[error("the signed content does not match its digest")]
    Digest,
    #[error("the signature does not verify with any of the upstream's certificates")]
    Signature,
    #[error("none of the upstream's certificates holds a usable RSA or EC P-256/P-384 key")]
    NoTrustedKey,
    #[error("the encrypted assertion could not be decrypted: {0}")]
    Decryption(&'static str),
    /// A top-level status other than Success: the identity provider refused the sign-in.
    #[error("the identity provider answered {code}{}", second.as_deref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Status {
        code: String,
        second: Option<String>,
        message: Option<String>,
    },
    #[error("the issuer is not the expected identity provider")]
    Issuer,
    #[error("the assertion is not meant for this service provider (audience)")]
    Audience,
    #[error("the response is addressed to another endpoint (Destination)")]
    Destination,
    #[error("the subject confirmation names another endpoint (Recipient)")]
    Recipient,
    #[error("the message answers another request (InResponseTo)")]
    InResponseTo,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is not valid yet")]
    NotYetValid,
    #[error("no bearer subject confirmation: {0}")]
    SubjectConfirmation(&'static str),
    #[error("a required element or attribute is missing: {0}")]
    Missing(&'static str),
    #[error("a value is malformed: {0}")]
    Invalid(&'static str),
    #[error("the metadata cannot be used: {0}")]
    Metadata(&'static str),
}

impl SamlError {
    /// A short stable name for the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            SamlError::TooLarge(_) => "too large",
            SamlError::Dtd => "dtd",
            SamlError::ProcessingInstruction => "processing instruction",
            SamlError::NotWellFormed(_) => "not well-formed",
            SamlError::Encoding(_) => "encoding",
            SamlError::UnexpectedRoot(_) => "root",
            SamlError::DuplicateId(_) => "duplicate id",
            SamlError::AssertionCount(_) | SamlError::Wrapping(_) => "wrapping",
            SamlError::Unsigned => "unsigned",
            SamlError::SignatureStructure(_) | SamlError::Signature => "signature",
            SamlError::Algorithm(_) => "algorithm",
            SamlError::Digest => "digest",
            SamlError::NoTrustedKey => "certificate",
            SamlError::Decryption(_) => "decryption",
            SamlError::Status { .. } => "status",
            SamlError::Issuer => "issuer",
            SamlError::Audience => "audience",
            SamlError::Destination => "destination",
            SamlError::Recipient => "recipient",
            SamlError::InResponseTo => "in-response-to",
            SamlError::Expired => "expired",
            SamlError::NotYetValid => "not yet valid",
            SamlError::SubjectConfirmation(_) => "subject confirmation",
            SamlError::Missing(_) => "missing",
            SamlError::Invalid(_) => "invalid",
            SamlError::Metadata(_) => "metadata",
        }
    }
}
