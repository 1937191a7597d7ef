"""A check of the SAML identity provider peer (idp.py) with pysaml2's own service provider:
a signed response to a signed AuthnRequest, an encrypted assertion, an SP-initiated and an
IdP-initiated logout. Run as `.venv/bin/python tests/saml/selftest.py`; exits 0 when all hold.
"""

import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml, samlp
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.sigver import get_xmlsec_binary, verify_redirect_signature
from saml2.xmldsig import SIG_RSA_SHA256

from idp import make_key_and_cert

HERE = Path(__file__).resolve().parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data)) as answer:
        return answer.read().decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def location_of(url):
    """The Location a GET of `url` is redirected to."""
    try:
        urllib.request.build_opener(NoRedirect).open(url)
    except urllib.error.HTTPError as err:
        assert err.code == 302, err.read()
        return err.headers["Location"]
    raise AssertionError(f"{url} did not redirect")


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def hidden(html, name):
    return re.search(f'name="{name}" value="([^"]*)"', html).group(1)


def start_idp():
    port = free_port()
    idp = subprocess.Popen(
        [sys.executable, str(HERE / "idp.py"), "--port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = idp.stdout.readline().strip()
    assert line == f"READY http://127.0.0.1:{port}", line
    return idp, f"http://127.0.0.1:{port}"


def make_sp(idp_base, workdir):
    """pysaml2's SP, and its metadata served on a loopback port (signing and encryption keys,
    signed requests, wants signed assertions, as Kizuna's metadata says)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key, cert = make_key_and_cert(workdir, "selftest SP")
    config = SPConfig()
    config.load(
        {
            "entityid": f"{base}/sp",
            "xmlsec_binary": get_xmlsec_binary(["/usr/bin"]),
            "key_file": key,
            "cert_file": cert,
            "encryption_keypairs": [{"key_file": key, "cert_file": cert}],
            "metadata": {"remote": [{"url": f"{idp_base}/metadata"}]},
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(f"{base}/acs", BINDING_HTTP_POST)],
                        "single_logout_service": [(f"{base}/slo", BINDING_HTTP_REDIRECT)],
                    },
                    "authn_requests_signed": True,
                    "want_assertions_signed": True,
                    "want_response_signed": False,
                    "allow_unsolicited": False,
                }
            },
        }
    )
    metadata = str(entity_descriptor(config)).encode()

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(metadata)))
            self.end_headers()
            self.wfile.write(metadata)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Saml2Client(config), f"{base}/metadata"


def sign_in(sp, idp_base):
    """A signed AuthnRequest by redirect, the IdP's form, and what the SP makes of it."""
    request_id, info = sp.prepare_for_authenticate(
        entityid=f"{idp_base}/metadata", relay_state="rs-1", sign=True, sigalg=SIG_RSA_SHA256
    )
    html = http(dict(info["headers"])["Location"])
    assert '<form action="' in html and 'method="post"' in html, html
    assert hidden(html, "RelayState") == "rs-1"
    return sp.parse_authn_request_response(hidden(html, "SAMLResponse"), BINDING_HTTP_POST, {request_id: "/"})


def main():
    workdir = tempfile.TemporaryDirectory()
    idp, idp_base = start_idp()
    try:
        sp, sp_metadata_url = make_sp(idp_base, workdir.name)
        control = f"{idp_base}/control"
        http(control, {"sp_metadata_url": sp_metadata_url, "name_id": "u-1", "session_index": "s-1"})

        response = sign_in(sp, idp_base)
        assert response.assertion.signature is not None, "the assertion is signed"
        assert response.name_id.text == "u-1" and response.name_id.format == saml.NAMEID_FORMAT_PERSISTENT
        assert response.ava["mail"] == ["alice@idp.example"], response.ava
        assert response.assertion.authn_statement[0].session_index == "s-1"
        assert json.loads(http(f"{idp_base}/authn-requests"))[0]["signature_verified"] is True
        print("ok: signed assertion accepted by pysaml2's SP; InResponseTo", response.in_response_to)

        http(control, {"encrypt_assertion": True, "sign_response": True})
        response = sign_in(sp, idp_base)
        assert response.name_id.text == "u-1" and response.assertion.signature is not None
        encrypted = http(f"{idp_base}/last-response")
        methods = re.findall(r'EncryptionMethod Algorithm="([^"]+)"', encrypted)
        print("ok: encrypted assertion decrypted by pysaml2's SP; algorithms", methods)
        http(control, {"encrypt_assertion": False, "sign_response": False})

        # SP-initiated logout: a signed LogoutRequest, answered by a signed LogoutResponse.
        _, logout = sp.create_logout_request(
            f"{idp_base}/slo", f"{idp_base}/metadata", name_id=saml.NameID(text="u-1"), session_indexes=["s-1"], sign=False
        )
        info = sp.apply_binding(BINDING_HTTP_REDIRECT, str(logout), f"{idp_base}/slo", "rs-2", sign=True, sigalg=SIG_RSA_SHA256)
        back = query_of(location_of(dict(info["headers"])["Location"]))
        assert back["RelayState"] == "rs-2" and back["SigAlg"] == SIG_RSA_SHA256
        idp_certs = sp.metadata.certs(f"{idp_base}/metadata", "any", "signing")
        assert any(verify_redirect_signature(back, sp.sec.sec_backend, c) for _, c in idp_certs)
        answer = sp.parse_logout_request_response(back["SAMLResponse"], BINDING_HTTP_REDIRECT)
        assert answer.response.status.status_code.value == samlp.STATUS_SUCCESS
        recorded = json.loads(http(f"{idp_base}/logouts"))[-1]
        assert recorded["session_index"] == "s-1" and recorded["signature_verified"] is True, recorded
        print("ok: SP-initiated logout answered with a signed LogoutResponse")

        # IdP-initiated logout: the SP parses the signed request and its answer is recorded.
        url = json.loads(http(f"{idp_base}/initiate-logout", {"name_id": "u-1", "session_index": "s-1"}))["url"]
        query = query_of(url)
        assert any(verify_redirect_signature(query, sp.sec.sec_backend, c) for _, c in idp_certs)
        request = sp.parse_logout_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT).message
        assert request.name_id.text == "u-1" and request.session_index[0].text == "s-1"
        reply = sp.create_logout_response(request, [BINDING_HTTP_REDIRECT], sign=False)
        info = sp.apply_binding(BINDING_HTTP_REDIRECT, str(reply), f"{idp_base}/slo", "", response=True, sign=True, sigalg=SIG_RSA_SHA256)
        recorded = json.loads(http(dict(info["headers"])["Location"]))
        assert recorded["status"] == samlp.STATUS_SUCCESS and recorded["signature_verified"] is True, recorded
        print("ok: IdP-initiated logout parsed by pysaml2's SP, its LogoutResponse recorded")
    finally:
        idp.stdin.close()
        idp.wait(timeout=10)
        workdir.cleanup()


if __name__ == "__main__":
    main()
