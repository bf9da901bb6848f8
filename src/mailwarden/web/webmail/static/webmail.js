// Mailwarden webmail: progressive enhancement only; every page works without this file.
// Live updates (server-sent events), keyboard shortcuts, select-all, draft autosave,
// message frame sizing, confirmations.
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf") || "";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function announce(text) { var live = $("#live"); if (live) { live.textContent = text; } }

  // --- confirmations -------------------------------------------------------
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("[data-confirm]") : null;
    if (el && !window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
  });

  // --- message list: select all, cursor ------------------------------------
  function setupList() {
    var all = $("#select-all");
    if (all) {
      all.hidden = false;
      all.addEventListener("change", function () {
        $all("#list input[name=uid]").forEach(function (box) { box.checked = all.checked; mark(box); });
      });
    }
    $all("#list input[name=uid]").forEach(function (box) {
      box.addEventListener("change", function () { mark(box); });
    });
  }
  function mark(box) { var tr = box.closest("tr"); if (tr) { tr.classList.toggle("selected", box.checked); } }
  setupList();

  var cursor = -1;
  function rows() { return $all("#list tr.msg"); }
  function moveCursor(step) {
    var list = rows();
    if (!list.length) { return; }
    if (cursor >= 0 && list[cursor]) { list[cursor].classList.remove("cursor"); }
    cursor = Math.max(0, Math.min(list.length - 1, cursor + step));
    list[cursor].classList.add("cursor");
    var link = $("a.open", list[cursor]);
    if (link) { link.focus(); }
  }

  // --- keyboard shortcuts --------------------------------------------------
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) { return; }
    var key = ev.key;
    if (key === "j") { moveCursor(1); ev.preventDefault(); return; }
    if (key === "k") { moveCursor(-1); ev.preventDefault(); return; }
    if (key === "x" && cursor >= 0) {
      var box = $("input[name=uid]", rows()[cursor]);
      if (box) { box.checked = !box.checked; mark(box); }
      ev.preventDefault(); return;
    }
    if (key === "o" && cursor >= 0) {
      var open = $("a.open", rows()[cursor]);
      if (open) { open.click(); }
      return;
    }
    if (key === "/") { var q = $("#q"); if (q) { q.focus(); ev.preventDefault(); } return; }
    if (key === "c") { window.location.href = "/compose"; return; }
    if (key === "?") { announce(HELP); return; }
    if (key.length !== 1 || "raefu#!sUvnp".indexOf(key) < 0) { return; }
    if (key === "#" || key === "e" || key === "!" || key === "s" || key === "U" || key === "v") {
      // On the list, act on the cursor row when nothing is selected.
      if (cursor >= 0 && !$all("#list input[name=uid]:checked").length) {
        var b = $("input[name=uid]", rows()[cursor]);
        if (b) { b.checked = true; }
      }
    }
    var target = $('[data-key="' + key + '"]');
    if (target) { ev.preventDefault(); target.click(); }
  });
  var HELP = "Shortcuts: j/k next/previous, o open, x select, c compose, r reply, a reply all, " +
    "f forward, e archive, # delete, ! junk, s flag, U mark unread, u back, / search, n/p pages.";

  // --- message frame: fit its content ----------------------------------------
  $all("iframe.body-frame").forEach(function (frame) {
    function fit() {
      try {
        var doc = frame.contentDocument;
        if (doc && doc.documentElement) {
          frame.style.height = (doc.documentElement.scrollHeight + 24) + "px";
        }
      } catch (e) { /* not same-origin: keep the CSS height */ }
    }
    frame.addEventListener("load", function () { fit(); setTimeout(fit, 300); });
    fit();
  });

  // --- live updates ------------------------------------------------------------
  function refreshCounts() {
    return fetch("/mail/counts", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (counts) {
        if (!counts) { return; }
        var total = 0;
        Object.keys(counts).forEach(function (id) {
          var link = $('.folders a[data-folder="' + id + '"] .count');
          if (link) { link.textContent = counts[id].unseen ? String(counts[id].unseen) : ""; }
        });
        var inbox = $(".folders a.role-inbox");
        if (inbox) { total = counts[inbox.getAttribute("data-folder")].unseen; }
        document.title = document.title.replace(/^\(\d+\) /, "");
        if (total) { document.title = "(" + total + ") " + document.title; }
      });
  }
  function refreshList() {
    var list = $("#list");
    if (!list || list.getAttribute("data-page") !== "1") { return; }
    if ($all("#list input[name=uid]:checked").length) { announce("New mail has arrived."); return; }
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("list");
        if (fresh) {
          list.parentNode.replaceChild(document.adoptNode(fresh), list);
          cursor = -1;
          setupList();
          announce("Message list updated.");
        }
      });
  }
  if (window.EventSource && csrf) {
    var source = new EventSource("/mail/events");
    source.addEventListener("open", function () { document.body.setAttribute("data-live", "on"); });
    source.addEventListener("error", function () { document.body.removeAttribute("data-live"); });
    source.addEventListener("change", function (ev) {
      var data = {};
      try { data = JSON.parse(ev.data); } catch (e) { /* ignore */ }
      refreshCounts();
      var list = $("#list");
      if (list && (data.overflow || (data.folders || []).indexOf(Number(list.getAttribute("data-folder"))) >= 0)) {
        refreshList();
      }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // --- compose: autosave drafts ---------------------------------------------------
  var form = $("#compose");
  if (form && window.fetch && window.FormData) {
    var dirty = false, timer = null, saving = false;
    var status = $("#autosave-status");
    function save() {
      timer = null;
      if (!dirty || saving) { return; }
      dirty = false; saving = true;
      var data = new FormData(form);
      data.delete("files");
      data.delete("action");
      fetch("/compose/autosave", {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, Accept: "application/json" }
      }).then(function (r) { return r.json(); }).then(function (res) {
        saving = false;
        if (res.draft) {
          $("#draft_ref").value = res.draft;
          var ul = $("#carry");
          ul.textContent = "";
          (res.carry || []).forEach(function (c, i) {
            var li = document.createElement("li");
            var box = document.createElement("input");
            box.type = "checkbox"; box.name = "carry"; box.checked = true;
            box.value = c[0] + ":" + c[1]; box.id = "carry-s" + i;
            var label = document.createElement("label");
            label.htmlFor = box.id; label.textContent = c[1];
            li.appendChild(box); li.appendChild(label); ul.appendChild(li);
          });
          if (status) { status.textContent = "Draft saved " + new Date().toLocaleTimeString(); }
        } else if (status && res.error) { status.textContent = res.error; }
      }).catch(function () { saving = false; dirty = true; });
    }
    form.addEventListener("input", function (ev) {
      if (ev.target && ev.target.type === "file") { return; }
      dirty = true;
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(save, 2000);
    });
    form.addEventListener("submit", function () { dirty = false; if (timer) { clearTimeout(timer); } });
  }
})();
