// The search preview page: plain JavaScript, no framework, no build step.
//
// Safety rule: nothing from the API is ever parsed as HTML. Highlights are the API's HTML-escaped
// fragments with matches in <mark>: they are split on the <mark> tags, the text between is unescaped
// and inserted as text nodes. Everything else goes in through textContent. (The page's CSP also
// requires Trusted Types, so an innerHTML assignment would throw.)
"use strict";

(function () {
  const DEBOUNCE_MS = 200;
  const PAGE_SIZE = 20;
  const TEXT_PREVIEW_CHARS = 240;

  const byId = (id) => document.getElementById(id);
  const ui = {
    skip: document.querySelector(".skip"),
    results: byId("results"),
    form: byId("search-form"),
    q: byId("q"),
    sort: byId("sort"),
    schemaName: byId("schema-name"),
    facets: byId("facets"),
    status: byId("status"),
    suggestion: byId("suggestion"),
    suggestionButton: byId("suggestion-button"),
    ignored: byId("ignored"),
    error: byId("error"),
    hits: byId("hits"),
    loadMore: byId("load-more"),
    sentinel: byId("sentinel"),
    dialog: byId("document"),
    dialogTitle: byId("document-title"),
    dialogJson: byId("document-json"),
    dialogClose: byId("document-close"),
  };

  let schema = null;
  let state = { q: "", filters: [], sort: "" };
  let search = 0; // increments per new search: answers to an older one are dropped
  let nextCursor = null;
  let loading = false;
  let shown = new Set();
  let debounce = null;
  let opener = null;

  // --- text helpers -------------------------------------------------------------------------------

  const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

  function unescapeHtml(text) {
    return text.replace(/&(?:#(\d+)|#x([0-9a-fA-F]+)|(amp|lt|gt|quot|apos));/g, (whole, dec, hex, name) => {
      if (name) return ENTITIES[name];
      const code = dec ? parseInt(dec, 10) : parseInt(hex, 16);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    });
  }

  /** Append an API highlight fragment: <mark> elements for matches, text nodes for the rest. */
  function appendMarked(parent, fragment) {
    let marked = false;
    for (const part of fragment.split(/(<mark>|<\/mark>)/)) {
      if (part === "<mark>") marked = true;
      else if (part === "</mark>") marked = false;
      else if (part) {
        const text = document.createTextNode(unescapeHtml(part));
        if (marked) {
          const mark = document.createElement("mark");
          mark.appendChild(text);
          parent.appendChild(mark);
        } else {
          parent.appendChild(text);
        }
      }
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function asText(value) {
    if (value === null || value === undefined) return "";
    return Array.isArray(value) ? value.map(asText).join(", ") : String(value);
  }

  function shorten(text) {
    return text.length > TEXT_PREVIEW_CHARS ? text.slice(0, TEXT_PREVIEW_CHARS - 1) + "…" : text;
  }

  // --- filters and the URL ------------------------------------------------------------------------

  /** The `filter` parameter for field = value (quoted when the API would read it otherwise). */
  function filterFor(field, value) {
    const text = String(value);
    const plain = text.trim() === text && text !== "" && !/^["[{]/.test(text);
    return field + ":" + (plain ? text : '"' + text + '"');
  }

  function parseFilter(filter) {
    const at = filter.indexOf(":");
    if (at < 0) return null;
    let value = filter.slice(at + 1).trim();
    if (value.length >= 2 && value[0] === '"' && value[value.length - 1] === '"') value = value.slice(1, -1);
    return { field: filter.slice(0, at).trim(), value };
  }

  function readUrl() {
    const params = new URLSearchParams(window.location.search);
    return {
      q: params.get("q") || "",
      filters: params.getAll("filter").filter((f) => f.trim() !== ""),
      sort: params.get("sort") || "",
    };
  }

  function stateParams(s) {
    const params = new URLSearchParams();
    if (s.q) params.set("q", s.q);
    for (const f of s.filters) params.append("filter", f);
    if (s.sort) params.set("sort", s.sort);
    return params;
  }

  function writeUrl() {
    const query = stateParams(state).toString();
    const url = window.location.pathname + (query ? "?" + query : "");
    if (url !== window.location.pathname + window.location.search) window.history.pushState(null, "", url);
  }

  function syncControls() {
    ui.q.value = state.q;
    const known = Array.from(ui.sort.options).some((o) => o.value === state.sort);
    ui.sort.value = known ? state.sort : "";
  }

  // --- API calls ----------------------------------------------------------------------------------

  async function problemText(response) {
    try {
      const problem = await response.json();
      const named = (problem.errors || []).map((e) => e.parameter + ": " + e.detail).join("; ");
      return (problem.title || "Error " + response.status) + ": " + (named || problem.detail || "");
    } catch (err) {
      return "Error " + response.status;
    }
  }

  function searchUrl(cursor) {
    const params = stateParams(state);
    if (schema.facetable.length) params.set("facets", schema.facetable.join(","));
    params.set("highlight", "true");
    params.set("size", String(PAGE_SIZE));
    if (cursor) params.set("cursor", cursor);
    return "/v1/search?" + params.toString();
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  /** Run the current state's search from its first page; `push` records it in the history. */
  async function runSearch(push) {
    if (push) writeUrl();
    const mine = ++search;
    nextCursor = null;
    loading = true;
    try {
      const response = await fetch(searchUrl(null), { headers: { Accept: "application/json" } });
      if (mine !== search) return;
      if (!response.ok) {
        showError(await problemText(response));
        return;
      }
      const page = await response.json();
      if (mine !== search) return;
      showError("");
      ui.hits.replaceChildren();
      shown = new Set();
      renderFacets(page.facets || {});
      renderNotes(page);
      appendHits(page, response.headers.get("X-Cache"));
    } catch (err) {
      if (mine === search) showError("The search failed: " + err);
    } finally {
      if (mine === search) loading = false;
    }
    recheckSentinel();
  }

  async function loadMore() {
    if (loading || !nextCursor) return;
    const mine = search;
    loading = true;
    try {
      const response = await fetch(searchUrl(nextCursor), { headers: { Accept: "application/json" } });
      if (mine !== search) return;
      if (!response.ok) {
        showError(await problemText(response));
        nextCursor = null;
        return;
      }
      const page = await response.json();
      if (mine !== search) return;
      appendHits(page, response.headers.get("X-Cache"));
    } catch (err) {
      if (mine === search) showError("Loading more failed: " + err);
    } finally {
      if (mine === search) loading = false;
    }
    recheckSentinel();
  }

  async function openDocument(id, from) {
    opener = from;
    const response = await fetch("/v1/documents/" + encodeURIComponent(id), { headers: { Accept: "application/json" } });
    ui.dialogTitle.textContent = id;
    ui.dialogJson.textContent = response.ok
      ? JSON.stringify(await response.json(), null, 2)
      : await problemText(response);
    if (!ui.dialog.open) ui.dialog.showModal();
    ui.dialogJson.focus();
  }

  // --- rendering ----------------------------------------------------------------------------------

  function renderNotes(page) {
    ui.suggestion.hidden = !page.suggestion;
    ui.suggestionButton.textContent = page.suggestion || "";
    const ignored = page.ignored_words || [];
    ui.ignored.hidden = ignored.length === 0;
    ui.ignored.textContent = ignored.length
      ? "No result has every word: ignored " + ignored.map((w) => "“" + w + "”").join(", ") + "."
      : "";
  }

  function renderStatus(page, xCache) {
    const total = (page.total.exact ? "" : "at least ") + page.total.value.toLocaleString("en");
    const noun = page.total.value === 1 && page.total.exact ? "result" : "results";
    const parts = [total + " " + noun, "showing " + shown.size, page.took_ms + " ms", "X-Cache: " + (xCache || "none")];
    ui.status.textContent = parts.join(" · ");
  }

  function titleField() {
    const named = schema.fields.find((f) => f.searchable && f.type === "keyword" && f.returned);
    return named ? named.name : null;
  }

  function renderHit(hit) {
    const item = element("li", "hit");
    item.dataset.id = hit.id;
    const heading = element("h2");
    const open = element("button", "link hit-title");
    open.type = "button";
    const field = titleField();
    const highlights = hit.highlights || {};
    if (field && highlights[field] && highlights[field].length) appendMarked(open, highlights[field][0]);
    else open.textContent = field && hit.document[field] ? asText(hit.document[field]) : hit.id;
    open.addEventListener("click", () => openDocument(hit.id, open));
    heading.appendChild(open);
    item.appendChild(heading);

    const meta = schema.facetable
      .filter((name) => asText(hit.document[name]) !== "")
      .slice(0, 4)
      .map((name) => name + ": " + shorten(asText(hit.document[name])));
    if (hit.id !== asText(hit.document[field])) meta.unshift("id: " + hit.id);
    item.appendChild(element("p", "meta", meta.join(" · ")));

    for (const spec of schema.fields) {
      if (!spec.searchable || spec.type !== "text") continue;
      const text = element("p", "text");
      text.dataset.field = spec.name;
      const fragments = highlights[spec.name];
      if (fragments && fragments.length) {
        fragments.forEach((fragment, index) => {
          if (index) text.appendChild(document.createTextNode(" … "));
          appendMarked(text, fragment);
        });
      } else if (hit.document[spec.name] !== undefined && hit.document[spec.name] !== null) {
        text.textContent = shorten(asText(hit.document[spec.name]));
      } else {
        continue;
      }
      item.appendChild(text);
    }
    return item;
  }

  function appendHits(page, xCache) {
    for (const hit of page.hits) {
      if (shown.has(hit.id)) continue; // the cursor never repeats a hit; a changing index might
      shown.add(hit.id);
      ui.hits.appendChild(renderHit(hit));
    }
    nextCursor = page.next_cursor;
    ui.loadMore.hidden = !nextCursor;
    renderStatus(page, xCache);
  }

  function renderFacets(facets) {
    const groups = [];
    const active = state.filters.map(parseFilter).filter(Boolean);
    schema.facetable.forEach((name, group) => {
      const buckets = (facets[name] || []).map((b) => ({ value: String(b.value), count: b.count }));
      for (const f of active) {
        if (f.field === name && !buckets.some((b) => b.value === f.value)) buckets.push({ value: f.value, count: 0 });
      }
      if (!buckets.length) return;
      const set = element("fieldset");
      set.appendChild(element("legend", "", name));
      buckets.forEach((bucket, index) => {
        const id = "facet-" + group + "-" + index;
        const label = element("label");
        label.htmlFor = id;
        const box = element("input");
        box.type = "checkbox";
        box.id = id;
        box.dataset.field = name;
        box.dataset.value = bucket.value;
        box.checked = active.some((f) => f.field === name && f.value === bucket.value);
        box.addEventListener("change", () => toggleFilter(name, bucket.value, box.checked));
        label.appendChild(box);
        label.appendChild(element("span", "value", bucket.value));
        label.appendChild(element("span", "count", String(bucket.count)));
        set.appendChild(label);
      });
      groups.push(set);
    });
    // Keep keyboard focus on the same checkbox across the re-render.
    const focused = document.activeElement;
    const focusKey = focused && focused.dataset && focused.dataset.field ? [focused.dataset.field, focused.dataset.value] : null;
    ui.facets.replaceChildren(...groups);
    if (focusKey) {
      const again = Array.from(ui.facets.querySelectorAll("input")).find(
        (box) => box.dataset.field === focusKey[0] && box.dataset.value === focusKey[1],
      );
      if (again) again.focus();
    }
  }

  function toggleFilter(field, value, on) {
    const without = state.filters.filter((f) => {
      const parsed = parseFilter(f);
      return !(parsed && parsed.field === field && parsed.value === value);
    });
    state = { ...state, filters: on ? [...without, filterFor(field, value)] : without };
    runSearch(true);
  }

  // --- infinite scroll ----------------------------------------------------------------------------

  const observer = new IntersectionObserver(
    (entries) => {
      if (entries.some((entry) => entry.isIntersecting)) loadMore();
    },
    { rootMargin: "300px" },
  );

  /** Observing again reports the sentinel's current visibility: a short page loads the next one. */
  function recheckSentinel() {
    observer.unobserve(ui.sentinel);
    if (nextCursor) observer.observe(ui.sentinel);
  }

  // --- events -------------------------------------------------------------------------------------

  function typed() {
    window.clearTimeout(debounce);
    debounce = window.setTimeout(() => {
      if (ui.q.value === state.q) return;
      state = { ...state, q: ui.q.value };
      runSearch(true);
    }, DEBOUNCE_MS);
  }

  function wire() {
    ui.q.addEventListener("input", typed);
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      window.clearTimeout(debounce);
      state = { ...state, q: ui.q.value };
      runSearch(true);
    });
    ui.sort.addEventListener("change", () => {
      state = { ...state, sort: ui.sort.value };
      runSearch(true);
    });
    ui.suggestionButton.addEventListener("click", () => {
      state = { ...state, q: ui.suggestionButton.textContent };
      syncControls();
      runSearch(true);
      ui.q.focus();
    });
    ui.loadMore.addEventListener("click", loadMore);
    ui.skip.addEventListener("click", (event) => {
      event.preventDefault(); // focus the results without a #fragment entry in the history
      ui.results.focus();
    });
    ui.dialogClose.addEventListener("click", () => ui.dialog.close());
    ui.dialog.addEventListener("close", () => {
      if (opener && opener.isConnected) opener.focus();
      opener = null;
    });
    window.addEventListener("popstate", () => {
      state = readUrl();
      syncControls();
      runSearch(false);
    });
  }

  function fillSort() {
    for (const name of schema.sortable) {
      for (const [value, label] of [[name, name + " (ascending)"], ["-" + name, name + " (descending)"]]) {
        const option = element("option", "", label);
        option.value = value;
        ui.sort.appendChild(option);
      }
    }
  }

  async function start() {
    wire();
    const response = await fetch("/v1/schema", { headers: { Accept: "application/json" } });
    if (!response.ok) {
      ui.status.textContent = "";
      showError("The schema could not be read: " + (await problemText(response)));
      return;
    }
    schema = await response.json();
    ui.schemaName.textContent = schema.name + " v" + schema.version;
    ui.q.maxLength = schema.limits.max_query_chars;
    fillSort();
    state = readUrl();
    syncControls();
    runSearch(false);
  }

  start();
})();
