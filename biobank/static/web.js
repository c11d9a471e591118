// The scan station: a keyboard-wedge scanner types a code and presses Enter; the card (or the
// box map) comes back as a piece of server-rendered HTML and is swapped in. No build step.
(function () {
  "use strict";

  var station = document.getElementById("station");
  if (!station) { return; }
  var form = document.getElementById("scan-form");
  var input = document.getElementById("scan-code");
  var boxField = document.getElementById("scan-box");
  var positionField = document.getElementById("scan-position");
  var result = document.getElementById("scan-result");
  var timing = document.getElementById("scan-timing");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var canStore = station.dataset.canStore === "1";
  var state = { box: "", target: "", picked: "", code: "" };

  function readState() {
    var root = result.querySelector(".scan-result");
    if (!root) { return; }
    state.box = root.dataset.box || "";
    state.target = root.dataset.target || "";
    state.picked = root.dataset.picked || "";
    state.code = root.dataset.code || "";
    boxField.value = state.box;
    positionField.value = "";
    var url = new URL(window.location.href);
    url.search = "";
    if (state.box) { url.searchParams.set("box", state.box); }
    if (state.code) { url.searchParams.set("code", state.code); }
    window.history.replaceState(null, "", url);
    form.classList.remove("cue-error", "cue-ok");
    void form.offsetWidth; // restart the cue's animation
    form.classList.add(root.classList.contains("has-error") ? "cue-error" : "cue-ok");
    checkPrinters();
    var cue = root.classList.contains("has-error") ? "error" : (root.dataset.cue || "");
    station.dataset.cue = cue;
    if (cue) { tone(cue); }
  }

  // Whether the card's printer answers: asked after the card is on screen, never on the
  // scan's own path.
  function checkPrinters() {
    result.querySelectorAll(".printer-state[data-printer]").forEach(function (state) {
      var name = state.dataset.printer;
      if (!name) { return; }
      fetch("/printers/" + encodeURIComponent(name) + "/reachable",
            { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          // 422: the printer's address is outside the printer rule; the answer says so.
          return response.ok || response.status === 422 ? response.json() : null;
        })
        .then(function (answer) {
          if (!answer || state.dataset.printer !== name) { return; }
          state.textContent = (answer.ready ? "✓ " : "✗ ") + answer.words;
          state.classList.toggle("is-ready", answer.ready);
          state.classList.toggle("is-down", !answer.ready);
        }).catch(function () { state.textContent = "printer state unknown"; });
    });
  }

  // The station's default printer is the one last chosen in this browser (a cookie).
  result.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-default-printer]");
    if (!select) { return; }
    document.cookie = "station_printer=" + encodeURIComponent(select.value) +
      "; path=/; max-age=31536000; SameSite=Lax";
    var state = result.querySelector(".printer-state");
    if (state) { state.dataset.printer = select.value; state.textContent = "checking the printer…"; }
    checkPrinters();
  });

  // Tones: a refusal must be heard by someone watching the tube, not the screen. Web Audio
  // makes them (no sound files); the mute button's choice is kept in this browser.
  var TONES = { ok: [[880, 0.09]], look: [[660, 0.05]], ask: [[520, 0.12], [780, 0.12]],
                warn: [[330, 0.12], [330, 0.12]], error: [[196, 0.35]] };
  var audio = null;
  var muteButton = document.getElementById("station-mute");
  function muted() { return window.localStorage.getItem("biobank.station.muted") === "1"; }
  function showMute() {
    if (!muteButton) { return; }
    muteButton.setAttribute("aria-pressed", muted() ? "true" : "false");
    muteButton.textContent = muted() ? "Sound off" : "Sound on";
  }
  function tone(cue) {
    var notes = TONES[cue];
    if (!notes) { return; }
    station.dataset.lastTone = muted() ? "muted" : cue;
    if (muted()) { return; }
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var at = audio.currentTime;
      notes.forEach(function (note) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.type = cue === "error" ? "square" : "sine";
        osc.frequency.value = note[0];
        gain.gain.setValueAtTime(0.15, at);
        gain.gain.exponentialRampToValueAtTime(0.001, at + note[1]);
        osc.connect(gain).connect(audio.destination);
        osc.start(at);
        osc.stop(at + note[1]);
        at += note[1] + 0.04;
      });
    } catch (e) { station.dataset.lastTone = "unavailable"; }
  }
  if (muteButton) {
    muteButton.addEventListener("click", function () {
      window.localStorage.setItem("biobank.station.muted", muted() ? "0" : "1");
      showMute();
      focusInput();
    });
    showMute();
  }

  function focusInput() {
    if (document.activeElement !== input) { input.focus({ preventScroll: true }); }
  }

  // Send a request for a piece of the station and swap it in; a lost session goes to login.
  function exchange(url, options, started) {
    options = options || {};
    options.headers = Object.assign({ "X-Fragment": "1", "Accept": "text/html" },
                                    options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      if (response.redirected && new URL(response.url).pathname === "/login") {
        window.location.href = response.url;
        return null;
      }
      return response.text().then(function (html) {
        if (/^\s*<!doctype/i.test(html)) {
          // A whole page (a refusal by the login check): show its message in place.
          var refusal = document.createElement("div");
          refusal.className = "scan-result has-error";
          refusal.dataset.box = state.box;
          var main = new DOMParser().parseFromString(html, "text/html").querySelector("main");
          while (main && main.firstChild) { refusal.appendChild(main.firstChild); }
          result.replaceChildren(refusal);
        } else {
          result.innerHTML = html;
        }
        readState();
        if (started !== undefined) {
          // Measured once the new card is painted: Enter → card on screen.
          window.requestAnimationFrame(function () {
            var ms = performance.now() - started;
            timing.textContent = "card in " + Math.round(ms) + " ms";
            timing.dataset.ms = ms.toFixed(1);
          });
        }
        focusInput();
      });
    }).catch(function () {
      result.innerHTML = '<div class="scan-result has-error"><div class="alert alert-error" ' +
        'role="alert">✗ <strong>Not accepted:</strong> the server could not be reached. ' +
        'Scan again.</div></div>';
      readState();
      focusInput();
    });
  }

  function post(url, fields, started) {
    var body = fields instanceof FormData ? fields : new FormData();
    if (!(fields instanceof FormData)) {
      Object.keys(fields).forEach(function (key) { body.append(key, fields[key]); });
    }
    body.set("csrf_token", csrf);
    return exchange(url, { method: "POST", body: body, headers: { "X-CSRF-Token": csrf } },
                    started);
  }

  function look(code, started, extra) {
    var params = new URLSearchParams(Object.assign({ code: code, box: state.box }, extra || {}));
    return exchange("/scan/card?" + params.toString(), {}, started);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = input.value.trim();
    var question = result.querySelector("form[data-confirm]");
    if (!code) {
      // Enter alone answers the station's question: yes, do it.
      if (question) { post(question.action, new FormData(question), performance.now()); }
      return;
    }
    var started = performance.now();
    input.value = "";
    if (state.box && canStore) {
      post("/scan/place", { code: code, box: state.box, position: state.target }, started);
    } else {
      look(code, started);
    }
  });

  // Clicks on the box map: a tube is picked (its card shows), a free place is chosen, or the
  // picked tube is moved there.
  result.addEventListener("click", function (event) {
    var cell = event.target.closest("a.cell");
    if (cell) {
      event.preventDefault();
      if (cell.classList.contains("free")) {
        if (state.picked && canStore) {
          post("/scan/" + encodeURIComponent(state.picked) + "/storage",
               { op: "store", box: state.box, position: cell.dataset.position,
                 open_box: state.box, reason: "moved on the box map" });
        } else {
          result.querySelectorAll(".cell.is-target").forEach(function (c) {
            c.classList.remove("is-target");
            c.querySelector(".tstat").textContent = "free";
          });
          cell.classList.add("is-target");
          cell.querySelector(".tstat").textContent = "next";
          state.target = cell.dataset.position;
          var label = result.querySelector(".target-label");
          if (label) { label.textContent = state.target; }
          focusInput();
        }
      } else {
        look(cell.dataset.barcode, undefined, canStore ? { picked: cell.dataset.barcode } : {});
      }
      return;
    }
    var leave = event.target.closest("a.station-leave");
    if (leave) { event.preventDefault(); look(state.code || "", performance.now()); return; }
    var close = event.target.closest("a.close-box");
    if (close) { event.preventDefault(); closeBox(); }
  });

  // The card's action forms are sent in the background; the new card comes back.
  result.addEventListener("submit", function (event) {
    var action = event.target.closest("form[data-async]");
    if (!action) { return; }
    event.preventDefault();
    post(action.action, new FormData(action));
  });

  function closeBox() {
    state.box = ""; state.picked = "";
    if (state.code) { look(state.code); } else {
      result.innerHTML = '<div class="scan-result"><p class="empty-state">Ready. Scan a tube ' +
        'to see its card, or a box to open its map.</p></div>';
      readState();
    }
    focusInput();
  }

  // Alt + a letter reaches a card's action: its first field, or the button if it has none.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      if (result.querySelector("form[data-confirm]")) {
        // Esc answers the question: no, leave the tube where it is (its card stays).
        event.preventDefault();
        look(state.code || "", performance.now());
        return;
      }
      if (state.picked) { state.picked = ""; look(state.code || "", undefined); }
      else if (state.box) { closeBox(); }
      else { input.value = ""; focusInput(); }
      return;
    }
    if (!event.altKey || event.ctrlKey || event.metaKey || event.key.length !== 1) { return; }
    var action = result.querySelector('form.action[data-key="' + event.key.toLowerCase() + '"]');
    if (!action) { return; }
    event.preventDefault();
    if (action.hasAttribute("data-instant")) {
      // One key does it (Undo, Print at once): no field to fill first.
      post(action.action, new FormData(action), performance.now());
      return;
    }
    var field = action.querySelector("input:not([type=hidden]), select");
    (field || action.querySelector("button")).focus();
    if (field && field.select) { field.select(); }
  });

  // The scan input keeps the focus unless the user chose another field or button.
  input.addEventListener("blur", function () {
    window.setTimeout(function () {
      var active = document.activeElement;
      if (!active || active === document.body) { focusInput(); }
    }, 0);
  });
  readState();
  form.classList.remove("cue-ok");
  focusInput();
})();
