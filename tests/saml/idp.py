"""A SAML 2.0 identity provider for Kizuna's end-to-end tests, made with pysaml2.

Run as `.venv/bin/python tests/saml/idp.py --port P` (scripts/test installs pysaml2 and
Debian's xmlsec1). It serves http://127.0.0.1:P, prints `READY http://127.0.0.1:P` once it
answers, and stops when its standard input closes (the test that started it is gone) or on
SIGTERM. It signs in the configured user without a login page; a test shapes what it
answers with POST /control. Its entityID is its metadata URL, http://127.0.0.1:P/metadata.

Endpoints (see README.md beside this file): GET /metadata, POST /control, GET /sso (an
AuthnRequest, HTTP-Redirect; answers an HTTP-POST form), GET /last-response, GET /slo (a
LogoutRequest or LogoutResponse, HTTP-Redirect), POST /initiate-logout, GET /logouts,
GET /authn-requests. A request it cannot handle gets 400 and a one-line reason.
"""

import argparse
import contextlib
import datetime
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import saml2.entity
import saml2.time_util
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
from saml2.assertion import Policy
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT
from saml2.server import Server
from saml2.sigver import get_xmlsec_binary, verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

NAME_ID_FORMATS = {
    "persistent": NAMEID_FORMAT_PERSISTENT,
    "transient": NAMEID_FORMAT_TRANSIENT,
    "email": NAMEID_FORMAT_EMAILADDRESS,
}

XMLENC = "http://www.w3.org/2001/04/xmlenc#"
XMLENC11 = "http://www.w3.org/2009/xmlenc11#"
# The data encryption algorithms offered, with the session key xmlsec1 draws for each.
SESSION_KEYS = {
    f"{XMLENC}tripledes-cbc": "des-192",
    f"{XMLENC}aes128-cbc": "aes-128",
    f"{XMLENC}aes256-cbc": "aes-256",
    f"{XMLENC11}aes128-gcm": "aes-128",
    f"{XMLENC11}aes256-gcm": "aes-256",
}

DEFAULTS = {
    "sp_metadata_url": None,
    "name_id": "alice",
    "name_id_format": "persistent",
    "attributes": {
        "eduPersonPrincipalName": ["alice@idp.example"],
        "mail": ["alice@idp.example"],
        "displayName": ["Alice Example"],
    },
    "authn_context": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
    "sign_response": False,
    "sign_assertion": True,
    "encrypt_assertion": False,
    # pysaml2's own choice (Triple DES), or another of SESSION_KEYS. The key is always wrapped
    # with rsa-oaep-mgf1p (pysaml2's choice too).
    "data_encryption": f"{XMLENC}tripledes-cbc",
    "lifetime_secs": 300,
    "issue_offset_secs": 0,
    "audience": None,
    "session_index": None,
}


def log(*parts):
    print("saml-idp:", *parts, file=sys.stderr, flush=True)


class BadRequest(Exception):
    """What the test asked for cannot be done: answered 400 with this message."""


def make_key_and_cert(directory, common_name):
    """An RSA-2048 key and a self-signed certificate for it, as PEM files in `directory`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_file = os.path.join(directory, "key.pem")
    cert_file = os.path.join(directory, "cert.pem")
    with open(key_file, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    with open(cert_file, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


@contextlib.contextmanager
def shifted_clock(offset):
    """pysaml2's clock, moved by `offset` seconds: every time it stamps (IssueInstant of the
    Response and the Assertion, AuthnInstant, NotBefore, NotOnOrAfter) moves with it. It reads
    the time only through saml2.time_util's `time` and `datetime`; callers hold IdP.lock."""
    if not offset:
        yield
        return

    class ShiftedTime:
        def gmtime(self, secs=None):
            return time.gmtime(time.time() + offset if secs is None else secs)

        def __getattr__(self, name):
            return getattr(time, name)

    class ShiftedDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.now(tz) + datetime.timedelta(seconds=offset)

    real_time, real_datetime = saml2.time_util.time, saml2.time_util.datetime
    saml2.time_util.time, saml2.time_util.datetime = ShiftedTime(), ShiftedDatetime
    try:
        yield
    finally:
        saml2.time_util.time, saml2.time_util.datetime = real_time, real_datetime


@contextlib.contextmanager
def data_encryption(sec, algorithm):
    """pysaml2 encrypting the assertion's data with `algorithm`. It names none itself: it takes
    pre_encryption_part's default (Triple DES) and has xmlsec1 draw a des-192 session key;
    callers hold IdP.lock."""
    real_part = saml2.entity.pre_encryption_part
    saml2.entity.pre_encryption_part = functools.partial(real_part, msg_enc=algorithm)
    sec.encrypt_assertion = functools.partial(type(sec).encrypt_assertion, sec, key_type=SESSION_KEYS[algorithm])
    try:
        yield
    finally:
        saml2.entity.pre_encryption_part = real_part
        del sec.encrypt_assertion


class ShapedServer(Server):
    """pysaml2's IdP, with the assertion changed where the test asked before it is signed:
    another Audience, a given SessionIndex (pysaml2 always draws a random one)."""

    audience = None
    session_index = None

    def setup_assertion(self, *args, **kwargs):
        assertion = super().setup_assertion(*args, **kwargs)
        if isinstance(assertion, saml.Assertion):
            if self.audience:
                restriction = assertion.conditions.audience_restriction[0]
                restriction.audience = [saml.Audience(text=self.audience)]
            if self.session_index:
                for statement in assertion.authn_statement:
                    statement.session_index = self.session_index
        return assertion


class IdP:
    """The identity provider's state: pysaml2's server, the test's settings, what it saw."""

    def __init__(self, base_url, key_file, cert_file):
        self.base_url = base_url
        self.entity_id = f"{base_url}/metadata"
        self.lock = threading.Lock()
        self.settings = dict(DEFAULTS)
        self.sp_entity_id = None
        self.last_response = None
        self.logouts = []
        self.authn_requests = []
        self.config = {
            "entityid": self.entity_id,
            "xmlsec_binary": get_xmlsec_binary(["/usr/bin"]),
            "key_file": key_file,
            "cert_file": cert_file,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "accepted_time_diff": 60,
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [(f"{base_url}/sso", BINDING_HTTP_REDIRECT)],
                        "single_logout_service": [(f"{base_url}/slo", BINDING_HTTP_REDIRECT)],
                    },
                    "name_id_format": list(NAME_ID_FORMATS.values()),
                    # Published so an SP signs its requests; /sso and /slo still take an
                    # unsigned one (and record it), see verify_when_signed.
                    "want_authn_requests_signed": True,
                }
            },
        }
        self.server = self.make_server()
        self.metadata_xml = str(entity_descriptor(self.server.config))

    # --- settings

    def control(self, changes):
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            raise BadRequest(f"unknown control fields: {', '.join(sorted(unknown))}")
        if "name_id_format" in changes and changes["name_id_format"] not in NAME_ID_FORMATS:
            raise BadRequest(f"name_id_format must be one of {', '.join(NAME_ID_FORMATS)}")
        if "data_encryption" in changes and changes["data_encryption"] not in SESSION_KEYS:
            raise BadRequest(f"data_encryption must be one of {', '.join(SESSION_KEYS)}")
        if "attributes" in changes:
            changes = dict(changes, attributes=self.local_attribute_names(changes["attributes"]))
        if changes.get("sp_metadata_url"):
            self.load_sp_metadata(changes["sp_metadata_url"])
        self.settings.update(changes)
        return self.current()

    def current(self):
        return dict(self.settings, entity_id=self.entity_id, sp_entity_id=self.sp_entity_id)

    def local_attribute_names(self, attributes):
        """Attributes keyed by pysaml2's friendly names (which it sends as urn:oid Names with
        that FriendlyName); an urn:oid name it knows is turned into its friendly name, any
        other name is sent as given."""
        if not isinstance(attributes, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in attributes.values()
        ):
            raise BadRequest("attributes must be an object of name -> list of strings")
        uri = next(c for c in self.server.config.attribute_converters if c.name_format == saml.NAME_FORMAT_URI)
        by_lower = {friendly.lower(): friendly for friendly in uri._to}
        local = {}
        for name, values in attributes.items():
            friendly = uri._fro.get(name) or by_lower.get(name.lower()) or name
            local[friendly] = values
        return local

    def make_server(self, metadata=None):
        """pysaml2's server, knowing the SPs of `metadata` (a pysaml2 metadata spec)."""
        config = IdPConfig()
        config.load(dict(self.config, metadata=metadata or {}))
        return ShapedServer(config=config)

    def load_sp_metadata(self, url):
        # A new server with the metadata loaded afresh: pysaml2 fetches and parses it (not
        # checking a signature), and a test that changed the SP's keys gets the new ones.
        self.server = self.make_server({"remote": [{"url": url}]})
        sps = [eid for eid, entity in self.server.metadata.items() if "spsso_descriptor" in entity]
        if len(sps) != 1:
            raise BadRequest(f"expected one SP in the metadata at {url}, found {len(sps)}")
        self.sp_entity_id = sps[0]
        log("loaded the metadata of", self.sp_entity_id)

    def require_sp(self):
        if not self.sp_entity_id:
            raise BadRequest("no SP metadata: POST /control {\"sp_metadata_url\": ...} first")

    # --- messages

    def verify_when_signed(self, signature):
        """pysaml2 checks a Redirect-binding signature (against the signing certificates of the
        sender's metadata) only when it must (want_authn_requests_signed, read for
        LogoutRequests too): must, exactly when the query carries one. It rebuilds the signed
        query with urlencode rather than using the bytes received, so the sender must encode
        as Python does (upper-case %XX, space as '+', '*' and '~' as %2A and ~)."""
        self.server.config.setattr("idp", "want_authn_requests_signed", signature is not None)

    def sso(self, query, relay_state):
        self.require_sp()
        self.verify_when_signed(query.get("Signature"))
        request = self.server.parse_authn_request(
            query["SAMLRequest"], BINDING_HTTP_REDIRECT, relay_state, query.get("SigAlg"), query.get("Signature")
        )
        if request is None:
            raise BadRequest("the AuthnRequest is not valid (version, Destination or IssueInstant)")
        message = request.message
        args = self.server.response_args(message, [BINDING_HTTP_POST])
        self.authn_requests.append(
            {
                "id": message.id,
                "issuer": message.issuer.text if message.issuer is not None else None,
                "acs_url": args["destination"],
                # Verified by pysaml2 (parse_authn_request raises when it does not verify).
                "signature_verified": "Signature" in query,
            }
        )
        s = self.settings
        if s["encrypt_assertion"] and not self.server.metadata.certs(args["sp_entity_id"], "any", "encryption"):
            raise BadRequest("encrypt_assertion: the SP's metadata has no encryption certificate")
        name_id = saml.NameID(format=NAME_ID_FORMATS[s["name_id_format"]], text=s["name_id"])
        policy = Policy({"default": {"lifetime": {"seconds": s["lifetime_secs"]}}}, mds=self.server.metadata)
        self.server.audience, self.server.session_index = s["audience"], s["session_index"]
        with shifted_clock(s["issue_offset_secs"]), data_encryption(self.server.sec, s["data_encryption"]):
            response = self.server.create_authn_response(
                dict(s["attributes"]),
                userid=s["name_id"],
                name_id=name_id,
                authn={"class_ref": s["authn_context"]},
                sign_response=s["sign_response"],
                sign_assertion=s["sign_assertion"],
                encrypt_assertion=s["encrypt_assertion"],
                release_policy=policy,
                sign_alg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
                in_response_to=args["in_response_to"],
                destination=args["destination"],
                sp_entity_id=args["sp_entity_id"],
                name_id_policy=args["name_id_policy"],
            )
        self.last_response = str(response)
        form = self.server.apply_binding(
            BINDING_HTTP_POST, self.last_response, args["destination"], relay_state or "", response=True
        )
        return form["data"]

    def slo(self, query, relay_state):
        """A LogoutRequest from the SP (answered with a signed LogoutResponse, by redirect), or
        the SP's LogoutResponse to one this IdP sent."""
        self.require_sp()
        if "SAMLResponse" in query:
            return None, self.logout_response(query)
        self.verify_when_signed(query.get("Signature"))
        request = self.server.parse_logout_request(
            query["SAMLRequest"], BINDING_HTTP_REDIRECT, relay_state, query.get("SigAlg"), query.get("Signature")
        )
        if request is None:
            raise BadRequest("the LogoutRequest is not valid (version, Destination or IssueInstant)")
        message = request.message
        self.logouts.append(
            {
                "kind": "request",
                "id": message.id,
                "name_id": message.name_id.text if message.name_id is not None else None,
                "session_index": message.session_index[0].text if message.session_index else None,
                "issuer": message.issuer.text if message.issuer is not None else None,
                "signature_verified": "Signature" in query,
            }
        )
        response = self.server.create_logout_response(message, [BINDING_HTTP_REDIRECT], sign=False)
        destination = response.destination
        redirect = self.server.apply_binding(
            BINDING_HTTP_REDIRECT, str(response), destination, relay_state or "", response=True, sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        return dict(redirect["headers"])["Location"], None

    def logout_response(self, query):
        response = self.server.parse_logout_request_response(query["SAMLResponse"], BINDING_HTTP_REDIRECT)
        if response is None:
            raise BadRequest("the LogoutResponse is not valid")
        message = response.response
        issuer = message.issuer.text if message.issuer is not None else None
        # pysaml2 does not check the query signature of a response: done here, against the
        # signing certificates of the issuer's metadata, with pysaml2's own function.
        verified = False
        if "Signature" in query and "SigAlg" in query:
            signed = {k: query[k] for k in ("SAMLResponse", "RelayState", "SigAlg", "Signature") if k in query}
            certs = self.server.metadata.certs(issuer, "any", "signing") if issuer else []
            verified = any(verify_redirect_signature(signed, self.server.sec.sec_backend, c) for _, c in certs)
        record = {
            "kind": "response",
            "id": message.id,
            "in_response_to": message.in_response_to,
            "issuer": issuer,
            "status": message.status.status_code.value,
            "signature_verified": verified,
        }
        self.logouts.append(record)
        return record

    def initiate_logout(self, body):
        self.require_sp()
        if not isinstance(body.get("name_id"), str):
            raise BadRequest("name_id (a string) is required")
        _, destination = self.server.pick_binding(
            "single_logout_service", [BINDING_HTTP_REDIRECT], "spsso", entity_id=self.sp_entity_id
        )
        name_id = saml.NameID(format=NAME_ID_FORMATS[self.settings["name_id_format"]], text=body["name_id"])
        session_index = body.get("session_index")
        _, request = self.server.create_logout_request(
            destination,
            self.sp_entity_id,
            name_id=name_id,
            session_indexes=[session_index] if session_index else None,
            sign=False,
        )
        redirect = self.server.apply_binding(
            BINDING_HTTP_REDIRECT, str(request), destination, body.get("relay_state", ""), sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        return {"url": dict(redirect["headers"])["Location"], "id": request.id}


class Handler(BaseHTTPRequestHandler):
    idp = None  # set by main()

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def handle_request(self, method):
        url = urlsplit(self.path)
        # One value per parameter, as received (the Redirect binding sends each once).
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            with self.idp.lock:
                self.route(method, url.path, query)
        except BadRequest as err:
            self.answer(400, "text/plain", str(err))
        except Exception as err:  # a test peer answers 400 and goes on, whatever went wrong
            traceback.print_exc(file=sys.stderr)
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            self.answer(400, "text/plain", reason[:500])

    def route(self, method, path, query):
        idp = self.idp
        relay_state = query.get("RelayState")
        if (method, path) == ("GET", "/metadata"):
            self.answer(200, "application/samlmetadata+xml", idp.metadata_xml)
        elif (method, path) == ("POST", "/control"):
            self.answer_json(idp.control(self.json_body()))
        elif (method, path) == ("GET", "/control"):
            self.answer_json(idp.current())
        elif (method, path) == ("GET", "/sso"):
            if "SAMLRequest" not in query:
                raise BadRequest("SAMLRequest is missing")
            self.answer(200, "text/html; charset=utf-8", idp.sso(query, relay_state))
        elif (method, path) == ("GET", "/last-response"):
            if idp.last_response is None:
                raise BadRequest("no response made yet")
            self.answer(200, "text/xml", idp.last_response)
        elif (method, path) == ("GET", "/slo"):
            if "SAMLRequest" not in query and "SAMLResponse" not in query:
                raise BadRequest("SAMLRequest or SAMLResponse is missing")
            location, recorded = idp.slo(query, relay_state)
            if location:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.answer_json(recorded)
        elif (method, path) == ("POST", "/initiate-logout"):
            self.answer_json(idp.initiate_logout(self.json_body()))
        elif (method, path) == ("GET", "/logouts"):
            self.answer_json(idp.logouts)
        elif (method, path) == ("GET", "/authn-requests"):
            self.answer_json(idp.authn_requests)
        else:
            raise BadRequest(f"no such endpoint: {method} {path}")

    def json_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as err:
            raise BadRequest(f"the body is not JSON: {err}") from err
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def answer_json(self, value):
        self.answer(200, "application/json", json.dumps(value))

    def answer(self, status, content_type, text):
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        log(format % args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    base_url = f"http://127.0.0.1:{port}"
    workdir = tempfile.mkdtemp(prefix="kizuna-saml-idp-")
    try:
        key_file, cert_file = make_key_and_cert(workdir, "Kizuna test SAML IdP")
        Handler.idp = IdP(base_url, key_file, cert_file)
        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        # Stop when the test that started us is gone (its end of stdin closes) or says so.
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())

        def stop_at_eof():
            while sys.stdin.buffer.read(4096):
                pass
            httpd.shutdown()

        threading.Thread(target=stop_at_eof, daemon=True).start()
        print(f"READY {base_url}", flush=True)
        httpd.serve_forever()
        httpd.server_close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
