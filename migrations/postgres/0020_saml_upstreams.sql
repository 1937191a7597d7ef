-- SAML 2.0 upstreams: what they have beyond an OpenID provider (IdP endpoints and
-- certificates from its approved metadata, Kizuna's SP certificates), as JSON; NULL for
-- an OpenID provider.
ALTER TABLE upstreams ADD COLUMN saml TEXT;
