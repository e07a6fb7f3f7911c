// Passkeys (WebAuthn Level 3): the browser side of the ceremonies. Each form marked
// data-passkey="login" or "register" fetches its options from data-options-url (a POST with the
// form's CSRF token), asks the browser for a credential, puts the answer (PublicKeyCredential
// toJSON) in the form's "credential" field and submits the form; the server checks everything.
// A login form also starts a conditional request at load, so the matricule field's autofill
// offers the passkeys of this site.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) {
    document.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) { el.hidden = false; });
    return;
  }
  document.querySelectorAll("[data-passkey-section]").forEach(function (el) { el.hidden = false; });

  // WebAuthn Level 3 signals: tell the authenticator which of its passkeys this site no longer
  // accepts, so that it stops offering them (a passkey deleted here, or refused as unknown).
  document.querySelectorAll("[data-passkey-unknown]").forEach(function (el) {
    if (PublicKeyCredential.signalUnknownCredential) {
      PublicKeyCredential.signalUnknownCredential({ rpId: el.dataset.rpId, credentialId: el.dataset.passkeyUnknown })
        .catch(function () {});
    }
  });
  document.querySelectorAll("[data-passkey-accepted]").forEach(function (el) {
    if (PublicKeyCredential.signalAllAcceptedCredentials) {
      PublicKeyCredential.signalAllAcceptedCredentials({ rpId: el.dataset.rpId, userId: el.dataset.userId,
        allAcceptedCredentialIds: JSON.parse(el.dataset.passkeyAccepted) }).catch(function () {});
    }
  });

  function b64urlToBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }
  function bufferToB64url(buffer) {
    var bytes = new Uint8Array(buffer), binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  // Browsers without the Level 3 JSON helpers get the same conversion by hand.
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) { return PublicKeyCredential.parseCreationOptionsFromJSON(json); }
    var options = Object.assign({}, json, { challenge: b64urlToBuffer(json.challenge), user: Object.assign({}, json.user, { id: b64urlToBuffer(json.user.id) }) });
    options.excludeCredentials = (json.excludeCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64urlToBuffer(c.id) }); });
    return options;
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) { return PublicKeyCredential.parseRequestOptionsFromJSON(json); }
    var options = Object.assign({}, json, { challenge: b64urlToBuffer(json.challenge) });
    options.allowCredentials = (json.allowCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64urlToBuffer(c.id) }); });
    return options;
  }
  function answer(credential) {
    if (typeof credential.toJSON === "function") { return credential.toJSON(); }
    var r = credential.response, response = { clientDataJSON: bufferToB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = bufferToB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = bufferToB64url(r.authenticatorData);
      response.signature = bufferToB64url(r.signature);
      response.userHandle = r.userHandle ? bufferToB64url(r.userHandle) : null;
    }
    return { id: credential.id, rawId: bufferToB64url(credential.rawId), type: credential.type, response: response,
             authenticatorAttachment: credential.authenticatorAttachment || null,
             clientExtensionResults: credential.getClientExtensionResults() };
  }

  function fetchOptions(form) {
    return fetch(form.dataset.optionsUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": form.querySelector("input[name=csrf_token]").value, "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { var refused = new Error(body.error || form.dataset.errorFailed); refused.fromServer = true; throw refused; }
        return body;
      });
    });
  }
  function showError(form, message) {
    var box = document.getElementById(form.dataset.errorBox);
    if (box) { box.textContent = message; box.hidden = false; }
  }
  function submitWith(form, credential) {
    form.querySelector("input[name=credential]").value = JSON.stringify(answer(credential));
    var remember = document.getElementById("remember"), field = form.querySelector("input[name=remember]");
    if (remember && field) { field.value = remember.checked ? "y" : ""; }
    form.submit();
  }
  function failed(form, error) {
    // NotAllowedError: the person cancelled or the time ran out; AbortError: replaced by another request.
    if (error && error.name === "AbortError") { return; }
    var name = error && error.name;
    showError(form, error && error.fromServer ? error.message : name === "NotAllowedError" ? form.dataset.errorCancelled
      : name === "InvalidStateError" ? form.dataset.errorExists : form.dataset.errorFailed);
  }

  document.querySelectorAll("form[data-passkey=login]").forEach(function (form) {
    var pending = null;
    function request(mediation) {
      if (pending) { pending.abort(); }
      var controller = pending = new AbortController();
      return fetchOptions(form).then(function (json) {
        return navigator.credentials.get({ publicKey: requestOptions(json), mediation: mediation, signal: controller.signal });
      }).then(function (credential) {
        if (credential) { submitWith(form, credential); }
      });
    }
    function conditional() {
      // Autofill: the passkeys of this site appear among the matricule field's suggestions.
      // The challenge lives a few minutes: the request is renewed before it expires.
      request("conditional").catch(function (error) { if (error && error.name !== "AbortError") { failed(form, error); } });
      window.setTimeout(conditional, Math.max(30, Number(form.dataset.renewSeconds || 270)) * 1000);
    }
    form.querySelector("[data-passkey-start]").addEventListener("click", function () {
      request("optional").catch(function (error) { failed(form, error); });
    });
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) { if (available) { conditional(); } });
    }
  });

  document.querySelectorAll("form[data-passkey=register]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.querySelector("input[name=credential]").value) { return; }
      event.preventDefault();
      var name = form.querySelector("input[name=name]");
      if (name && !name.value.trim()) { name.focus(); showError(form, form.dataset.errorName); return; }
      fetchOptions(form).then(function (json) {
        return navigator.credentials.create({ publicKey: creationOptions(json) });
      }).then(function (credential) { submitWith(form, credential); }).catch(function (error) { failed(form, error); });
    });
  });
})();
