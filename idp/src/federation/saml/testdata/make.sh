#!/bin/sh
# Regenerates the SAML test fixtures with the xmlsec1 command line tool (Debian package
# xmlsec1) and openssl. Test-only: nothing here is used by a build. Run from this folder.
# Keys are made only if missing, so a rerun re-signs with the same keys.
set -eu
cd "$(dirname "$0")"

key() { # name, openssl genpkey arguments...
    name=$1; shift
    [ -f "$name.key.pem" ] || openssl genpkey "$@" -out "$name.key.pem" 2>/dev/null
    [ -f "$name.crt.pem" ] || openssl req -new -x509 -key "$name.key.pem" -days 36500 \
        -subj "/CN=$name test" -out "$name.crt.pem"
}
key idp -algorithm RSA -pkeyopt rsa_keygen_bits:2048
key untrusted -algorithm RSA -pkeyopt rsa_keygen_bits:2048
key idp-ec -algorithm EC -pkeyopt ec_paramgen_curve:P-256
key sp-enc -algorithm RSA -pkeyopt rsa_keygen_bits:2048
openssl pkcs8 -topk8 -nocrypt -in sp-enc.key.pem -outform DER -out sp-enc.key.der
openssl x509 -in idp.crt.pem -outform DER -out idp.crt.der
openssl x509 -in idp-ec.crt.pem -outform DER -out idp-ec.crt.der
openssl x509 -in untrusted.crt.pem -outform DER -out untrusted.crt.der

DS=http://www.w3.org/2000/09/xmldsig#
MORE=http://www.w3.org/2001/04/xmldsig-more#
EXC=http://www.w3.org/2001/10/xml-exc-c14n#

# A signature template: signature method, digest method, referenced ID.
sig() {
    printf '<ds:Signature xmlns:ds="%s"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="%s"/>' "$DS" "$EXC"
    printf '<ds:SignatureMethod Algorithm="%s"/><ds:Reference URI="#%s"><ds:Transforms>' "$1" "$3"
    printf '<ds:Transform Algorithm="%senveloped-signature"/><ds:Transform Algorithm="%s">' "$DS" "$EXC"
    printf '<ec:InclusiveNamespaces xmlns:ec="%s" PrefixList="xs"/></ds:Transform></ds:Transforms>' "$EXC"
    printf '<ds:DigestMethod Algorithm="%s"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>' "$2"
    printf '<ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>'
}
RSA256=$(sig "${MORE}rsa-sha256" http://www.w3.org/2001/04/xmlenc#sha256 _assert1)

# A Response: $1 = Signature placed in the Response, $2 = in the Assertion, $3 = NameID text.
# Valid from 2030-01-01T00:00:00Z (1893456000) for five minutes.
response() {
cat <<XML
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_resp1" Version="2.0" IssueInstant="2030-01-01T00:00:00Z" Destination="https://kizuna.example.com/saml/acs" InResponseTo="_req1">
  <saml:Issuer>https://idp.example.org/idp</saml:Issuer>$1
  <samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
  <saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="_assert1" Version="2.0" IssueInstant="2030-01-01T00:00:00Z">
    <saml:Issuer>https://idp.example.org/idp</saml:Issuer>$2
    <saml:Subject>
      <saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">$3</saml:NameID>
      <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
        <saml:SubjectConfirmationData NotOnOrAfter="2030-01-01T00:05:00Z" Recipient="https://kizuna.example.com/saml/acs" InResponseTo="_req1"/>
      </saml:SubjectConfirmation>
    </saml:Subject>
    <saml:Conditions NotBefore="2030-01-01T00:00:00Z" NotOnOrAfter="2030-01-01T00:05:00Z">
      <saml:AudienceRestriction><saml:Audience>https://kizuna.example.com/saml/sp</saml:Audience></saml:AudienceRestriction>
    </saml:Conditions>
    <saml:AuthnStatement AuthnInstant="2030-01-01T00:00:00Z" SessionIndex="_session1">
      <saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext>
    </saml:AuthnStatement>
    <saml:AttributeStatement>
      <saml:Attribute Name="urn:oid:0.9.2342.19200300.100.1.3" FriendlyName="mail" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"><saml:AttributeValue xsi:type="xs:string">alice@example.org</saml:AttributeValue></saml:Attribute>
      <saml:Attribute Name="role"><saml:AttributeValue xsi:type="xs:string">staff</saml:AttributeValue><saml:AttributeValue xsi:type="xs:string">admin</saml:AttributeValue></saml:Attribute>
    </saml:AttributeStatement>
  </saml:Assertion>
</samlp:Response>
XML
}

sign() { # template file, output file, key and cert
    xmlsec1 --sign --privkey-pem "$3" --id-attr:ID urn:oasis:names:tc:SAML:2.0:protocol:Response \
        --id-attr:ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion --output "$2" "$1"
}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

response "" "$RSA256" alice > "$T/a.xml"
sign "$T/a.xml" signed_assertion.xml idp.key.pem,idp.crt.pem

response "$(sig "${MORE}rsa-sha256" http://www.w3.org/2001/04/xmlenc#sha256 _resp1)" "" alice > "$T/r.xml"
sign "$T/r.xml" signed_response.xml idp.key.pem,idp.crt.pem

response "" "$(sig "${MORE}ecdsa-sha256" http://www.w3.org/2001/04/xmlenc#sha256 _assert1)" alice > "$T/e.xml"
sign "$T/e.xml" signed_assertion_ecdsa.xml idp-ec.key.pem,idp-ec.crt.pem

response "" "$(sig "${MORE}rsa-sha512" http://www.w3.org/2001/04/xmlenc#sha512 _assert1)" alice > "$T/5.xml"
sign "$T/5.xml" signed_assertion_sha512.xml idp.key.pem,idp.crt.pem

response "" "$(sig "${DS}rsa-sha1" "${DS}sha1" _assert1)" alice > "$T/1.xml"
sign "$T/1.xml" signed_assertion_sha1.xml idp.key.pem,idp.crt.pem

response "" "$RSA256" alice > "$T/u.xml"
sign "$T/u.xml" signed_by_untrusted.xml untrusted.key.pem,untrusted.crt.pem

# The comment splits the NameID: exclusive C14N drops it, so the signature stays good.
response "" "$RSA256" 'user@evil.com<!---->.trusted.com' > "$T/c.xml"
sign "$T/c.xml" signed_comment_in_nameid.xml idp.key.pem,idp.crt.pem

# A Signature inside the Assertion that covers the whole Response (valid, but misplaced).
response "" "$(sig "${MORE}rsa-sha256" http://www.w3.org/2001/04/xmlenc#sha256 _resp1)" alice > "$T/m.xml"
sign "$T/m.xml" signature_not_child_of_signed.xml idp.key.pem,idp.crt.pem

# Encrypted assertions: the signed assertion, wrapped in EncryptedAssertion, then encrypted.
sed -e 's|  <saml:Assertion |  <saml:EncryptedAssertion><saml:Assertion |' \
    -e 's|  </saml:Assertion>|  </saml:Assertion></saml:EncryptedAssertion>|' signed_assertion.xml > "$T/w.xml"
enc() { # data method, key transport method (+ digest element), output
cat > "$T/enc.xml" <<XML
<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="$1"/><ds:KeyInfo xmlns:ds="$DS"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="$2">$3</xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>
XML
    xmlsec1 --encrypt --pubkey-cert-pem sp-enc.crt.pem --session-key "$4" --xml-data "$T/w.xml" \
        --node-name urn:oasis:names:tc:SAML:2.0:assertion:Assertion --output "$5" "$T/enc.xml"
}
enc http://www.w3.org/2001/04/xmlenc#aes128-cbc http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p \
    "<ds:DigestMethod xmlns:ds=\"$DS\" Algorithm=\"${DS}sha1\"/>" aes-128 encrypted_oaep_aes128cbc.xml
# xmlsec1 1.2 has neither xmlenc11#rsa-oaep nor OAEP digests other than SHA-1; the tests
# rename this one to xmlenc11#rsa-oaep (same bytes: MGF1 with SHA-1 is its default).
enc http://www.w3.org/2009/xmlenc11#aes256-gcm http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p \
    "" aes-256 encrypted_oaep_aes256gcm.xml
enc http://www.w3.org/2001/04/xmlenc#aes256-cbc http://www.w3.org/2001/04/xmlenc#rsa-1_5 "" aes-256 encrypted_rsa15.xml
