// Kizuna passkey ceremonies. A form with data-webauthn="register|authenticate|discover"
// carries the server's options (base64url binary fields) in data-webauthn-options; on
// submit this runs navigator.credentials.create()/get(), puts the result as JSON into the
// form's hidden "credential" field and submits it. "discover" forms also offer passkeys in
// the browser's username autofill (conditional mediation) where supported.
'use strict';
(function () {
  function decode (text) {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '==='.slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  }
  function encode (buffer) {
    let bin = '';
    for (const b of new Uint8Array(buffer)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function creationOptions (json) {
    const o = structuredClone(json.publicKey);
    o.challenge = decode(o.challenge);
    o.user.id = decode(o.user.id);
    (o.excludeCredentials || []).forEach((c) => { c.id = decode(c.id); });
    return o;
  }
  function requestOptions (json) {
    const o = structuredClone(json.publicKey);
    o.challenge = decode(o.challenge);
    (o.allowCredentials || []).forEach((c) => { c.id = decode(c.id); });
    return o;
  }
  function toJSON (cred) {
    const r = cred.response;
    const response = r.attestationObject
      ? {
          attestationObject: encode(r.attestationObject),
          clientDataJSON: encode(r.clientDataJSON),
          transports: r.getTransports ? r.getTransports() : []
        }
      : {
          authenticatorData: encode(r.authenticatorData),
          clientDataJSON: encode(r.clientDataJSON),
          signature: encode(r.signature),
          userHandle: r.userHandle ? encode(r.userHandle) : null
        };
    return JSON.stringify({
      id: cred.id,
      rawId: encode(cred.rawId),
      type: cred.type,
      response,
      extensions: cred.getClientExtensionResults()
    });
  }
  for (const form of document.querySelectorAll('form[data-webauthn]')) {
    if (!window.PublicKeyCredential) {
      form.hidden = true;
      continue;
    }
    const mode = form.dataset.webauthn;
    const options = JSON.parse(form.dataset.webauthnOptions);
    const field = form.querySelector('input[name="credential"]');
    const status = form.querySelector('[data-webauthn-status]');
    let autofill = null;
    let autofillDone = Promise.resolve();
    const done = (cred) => { field.value = toJSON(cred); form.submit(); };
    form.addEventListener('submit', async (event) => {
      if (field.value) return;
      event.preventDefault();
      if (!form.reportValidity()) return;
      if (autofill) {
        autofill.abort();
        await autofillDone;
      }
      if (status) status.textContent = '';
      try {
        const cred = mode === 'register'
          ? await navigator.credentials.create({ publicKey: creationOptions(options) })
          : await navigator.credentials.get({ publicKey: requestOptions(options) });
        done(cred);
      } catch (e) {
        if (status) status.textContent = form.dataset.webauthnError + ' (' + e.name + ')';
      }
    });
    if (mode === 'discover' && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (!available) return;
        autofill = new AbortController();
        autofillDone = navigator.credentials
          .get({ publicKey: requestOptions(options), mediation: 'conditional', signal: autofill.signal })
          .then(done)
          .catch(() => {});
      });
    }
  }
})();
