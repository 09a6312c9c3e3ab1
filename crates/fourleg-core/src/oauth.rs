//! The OAuth vocabulary, in one place: grant types, token type URIs and
//! error codes, one variant per registered string and an `Extension`
//! fallback for the rest, so an unknown value is kept, shown and compared,
//! never lost (as oauth2-rs does with its `BasicErrorResponseType`).
//!
//! Each enum reads and writes its RFC string (`as_str`, `From<&str>`, serde
//! as a plain string); code compares variants, never strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod challenge;
pub mod dpop;

/// The registered strings, for the places that need a `&'static str` constant.
pub mod uri {
    /// RFC 8693 §2.1.
    pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    /// RFC 8693 §3.
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    pub const SAML1: &str = "urn:ietf:params:oauth:token-type:saml1";
    pub const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";
}

/// Declares a vocabulary enum: its registered variants with their strings,
/// an `Extension(String)` fallback, `as_str`, `From<&str>`, `Display` and
/// serde as the string.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:expr,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value no variant stands for, kept as it was written.
            Extension(String),
        }

        impl $name {
            /// Every registered variant (not `Extension`).
            pub const REGISTERED: &'static [$name] = &[$($name::$variant,)+];

            /// The registered string.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Extension(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $(if s == $text {
                    return $name::$variant;
                })+
                $name::Extension(s.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(|s| $name::from(s.as_str()))
            }
        }
    };
}

vocabulary! {
    /// `grant_type` values (RFC 6749 §4, RFC 8693 §2.1).
    GrantType {
        /// RFC 6749 §4.1.3.
        AuthorizationCode => "authorization_code",
        /// RFC 6749 §4.3.2 (resource owner password credentials).
        Password => "password",
        /// RFC 6749 §4.4.2.
        ClientCredentials => "client_credentials",
        /// RFC 6749 §6.
        RefreshToken => "refresh_token",
        /// RFC 8693 §2.1.
        TokenExchange => uri::GRANT_TOKEN_EXCHANGE,
    }
}

vocabulary! {
    /// Token type identifiers (RFC 8693 §3): `subject_token_type`,
    /// `actor_token_type`, `requested_token_type`, `issued_token_type`.
    TokenType {
        AccessToken => uri::ACCESS_TOKEN,
        RefreshToken => uri::REFRESH_TOKEN,
        IdToken => uri::ID_TOKEN,
        Jwt => uri::JWT,
        Saml1 => uri::SAML1,
        Saml2 => uri::SAML2,
    }
}

impl TokenType {
    /// The URI of a short name as scenarios write it (`access_token` →
    /// RFC 8693 §3's URN); any other string is taken as a URI already.
    #[must_use]
    pub fn from_short(short: &str) -> Self {
        match short {
            "access_token" => TokenType::AccessToken,
            "refresh_token" => TokenType::RefreshToken,
            "id_token" => TokenType::IdToken,
            "jwt" => TokenType::Jwt,
            "saml1" => TokenType::Saml1,
            "saml2" => TokenType::Saml2,
            uri => TokenType::from(uri),
        }
    }
}

vocabulary! {
    /// `error` codes of token-endpoint responses (RFC 6749 §5.2), with
    /// RFC 8693 §2.2.2's `invalid_target` (RFC 8707 §2) and RFC 7009
    /// §2.2.1's `unsupported_token_type`.
    ErrorCode {
        InvalidRequest => "invalid_request",
        InvalidClient => "invalid_client",
        InvalidGrant => "invalid_grant",
        UnauthorizedClient => "unauthorized_client",
        UnsupportedGrantType => "unsupported_grant_type",
        InvalidScope => "invalid_scope",
        /// RFC 8693 §2.2.2: the requested audience or resource is unknown or not allowed.
        InvalidTarget => "invalid_target",
        /// RFC 7009 §2.2.1.
        UnsupportedTokenType => "unsupported_token_type",
        /// RFC 6749 §4.1.2.1 (authorization endpoint).
        UnsupportedResponseType => "unsupported_response_type",
        /// RFC 6749 §4.1.2.1.
        AccessDenied => "access_denied",
        /// RFC 9449 §5: the DPoP proof of a token request is invalid.
        InvalidDpopProof => "invalid_dpop_proof",
    }
}

impl ErrorCode {
    /// The HTTP status of the error response: 401 for `invalid_client`
    /// (RFC 6749 §5.2 allows 401 and requires it with `Authorization`), 400
    /// otherwise.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        if *self == ErrorCode::InvalidClient {
            401
        } else {
            400
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_strings_round_trip_and_others_are_kept() {
        for g in GrantType::REGISTERED {
            assert_eq!(&GrantType::from(g.as_str()), g);
        }
        for t in TokenType::REGISTERED {
            assert_eq!(&TokenType::from(t.as_str()), t);
        }
        for e in ErrorCode::REGISTERED {
            assert_eq!(&ErrorCode::from(e.as_str()), e);
        }
        assert_eq!(GrantType::from("urn:x:custom"), GrantType::Extension("urn:x:custom".into()));
        assert_eq!(ErrorCode::from("slow_down").as_str(), "slow_down");
        // Case matters (RFC 6749 §5.2 codes are case-sensitive ASCII).
        assert_eq!(ErrorCode::from("Invalid_Request"), ErrorCode::Extension("Invalid_Request".into()));
    }

    #[test]
    fn short_token_type_names_expand_to_the_urns() {
        assert_eq!(TokenType::from_short("access_token"), TokenType::AccessToken);
        assert_eq!(TokenType::from_short("jwt").as_str(), "urn:ietf:params:oauth:token-type:jwt");
        assert_eq!(TokenType::from_short(uri::ID_TOKEN), TokenType::IdToken);
        assert_eq!(TokenType::from_short("urn:x:mine"), TokenType::Extension("urn:x:mine".into()));
    }

    #[test]
    fn serde_is_the_plain_string() {
        assert_eq!(serde_json::to_string(&ErrorCode::InvalidTarget).unwrap(), "\"invalid_target\"");
        let g: GrantType = serde_json::from_str("\"urn:ietf:params:oauth:grant-type:token-exchange\"").unwrap();
        assert_eq!(g, GrantType::TokenExchange);
        let e: ErrorCode = serde_json::from_str("\"temporarily_unavailable\"").unwrap();
        assert_eq!(e, ErrorCode::Extension("temporarily_unavailable".into()));
    }

    #[test]
    fn only_invalid_client_is_401() {
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert!(ErrorCode::REGISTERED
            .iter()
            .filter(|e| **e != ErrorCode::InvalidClient)
            .all(|e| e.http_status() == 400));
    }
}
