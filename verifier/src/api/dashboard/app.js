// Vouch dashboard: leaderboard, network demand and one page per orchestrator.
// No framework, no network beyond this server's API. Every element is built
// with createElement/textContent: data never becomes markup.
'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const FILTERS = ['window', 'region', 'model_id', 'origin', 'policy'];
  // policy: the node's default, learned from /v1/policies at start.
  const DEFAULTS = { window: '1h', origin: 'production', policy: null };
  let generation = 0; // drops answers to superseded requests

  // ---- DOM helpers -------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    append(e, children);
    return e;
  }
  function append(parent, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return parent;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // ---- formatting --------------------------------------------------------
  const dash = '—';
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const num = (v, d = 0) => (isNum(v) ? v.toFixed(d) : dash);
  const pct = (v, d = 1) => (isNum(v) ? (v * 100).toFixed(d) + '%' : dash);
  const ms = (v) => (isNum(v) ? Math.round(v) + ' ms' : dash);
  const short = (a) => (typeof a === 'string' && a.length > 14 ? a.slice(0, 8) + '…' + a.slice(-6) : String(a));
  function utc(msValue, withDate) {
    if (!isNum(msValue)) return dash;
    const iso = new Date(msValue).toISOString();
    return withDate ? iso.slice(5, 10) + ' ' + iso.slice(11, 16) : iso.slice(11, 16);
  }

  // ---- routing and filters ----------------------------------------------
  function route() {
    const hash = location.hash.replace(/^#/, '') || '/';
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    const m = /^\/o\/(0x[0-9a-fA-F]{40})$/.exec(path);
    return { page: m ? 'orchestrator' : 'leaderboard', address: m ? m[1].toLowerCase() : null, params };
  }
  function filterQuery(params) {
    const q = new URLSearchParams();
    for (const k of FILTERS) {
      const v = params.get(k);
      if (v) q.set(k, v);
    }
    return q;
  }
  // What an SLA request carries: the filters, and always the policy, so
  // the numbers come from the policy the selector shows.
  function requestQuery(params) {
    const q = filterQuery(params);
    if (!q.has('policy') && DEFAULTS.policy) q.set('policy', DEFAULTS.policy);
    return q;
  }
  function link(path, params) {
    const q = filterQuery(params).toString();
    return '#' + path + (q ? '?' + q : '');
  }
  function syncFilterControls(params) {
    for (const k of FILTERS) {
      const select = document.querySelector(`#filters select[name="${k}"]`);
      if (!select) continue;
      const want = params.get(k) || DEFAULTS[k] || '';
      if (want && ![...select.options].some((o) => o.value === want)) select.append(el('option', { value: want, text: want }));
      select.value = want;
    }
  }
  function onFilterChange() {
    const params = new URLSearchParams();
    for (const k of FILTERS) {
      const v = document.querySelector(`#filters select[name="${k}"]`).value;
      if (v && v !== DEFAULTS[k]) params.set(k, v);
    }
    const r = route();
    location.hash = link(r.page === 'orchestrator' ? '/o/' + r.address : '/', params).slice(1);
  }

  // ---- API ---------------------------------------------------------------
  async function api(path, params) {
    const q = params && params.toString();
    const resp = await fetch(path + (q ? '?' + q : ''), { headers: { accept: 'application/json' } });
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (!resp.ok) {
      const msg = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${resp.status}`;
      throw new Error(msg);
    }
    return body;
  }
  function showError(err) {
    const box = document.getElementById('error');
    if (err) {
      box.textContent = String(err.message || err);
      box.hidden = false;
    } else {
      box.textContent = '';
      box.hidden = true;
    }
  }

  // ---- tables ------------------------------------------------------------
  function table(caption, headers, rows, attrs) {
    return el('table', attrs || {},
      el('caption', { text: caption }),
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows));
  }
  const td = (v, cls) => el('td', { class: cls || null }, v);

  function metaLine(body) {
    const meta = document.getElementById('meta');
    meta.textContent = '';
    if (!body || !body.window) return;
    const w = body.window;
    const parts = [`Window ${w.name}: ${w.start} → ${w.end}`];
    if (body.filters) parts.push(`origin ${body.filters.origin}`);
    // Signed checkpoints of the window's minutes: how many verifiers agree with this one.
    if (body.agreement) {
      const a = body.agreement;
      parts.push(a.agree === a.verifiers
        ? `${a.agree}/${a.verifiers} verifiers agree`
        : `⚠ ${a.agree}/${a.verifiers} verifiers agree (see /v1/checkpoints)`);
    }
    meta.textContent = parts.join(' · ');
  }

  // Which definitions produced the numbers: the answer's own policy.
  function policyNote(policy) {
    if (!policy) return null;
    const name = policy.name || `${policy.id}-v${policy.version}`;
    const hash = typeof policy.hash === 'string' ? policy.hash : '';
    return el('p', { id: 'policy', class: 'policy', title: `${policy.id} version ${policy.version}, hash ${hash}` },
      'Scored by policy ', el('strong', { class: 'policy-name', text: name }),
      ' · hash ', el('code', { class: 'policy-hash', text: hash.slice(0, hash.startsWith('0x') ? 12 : 10) }));
  }

  function scoreCell(o) {
    if (!isNum(o.sla_score)) return td(dash, 'num');
    return td([el('meter', { min: 0, max: 100, value: o.sla_score, title: num(o.sla_score, 2) }), ' ', num(o.sla_score, 1)], 'num score');
  }
  function selfReported(sr) {
    if (!sr || (sr.fps_p50 === null && sr.cue === null)) return td(dash);
    const text = `fps ${num(sr.fps_p50, 1)} · CUE ${num(sr.cue, 2)}${sr.cue_source ? ' (' + sr.cue_source + ')' : ''}`;
    return td([text, sr.disagrees ? el('span', { class: 'flag', title: 'disagrees with gateway observations', text: ' ⚠ disagrees' }) : null], 'self');
  }

  // A gateway whose reports are far from the other gateways' (who it is
  // needs the restricted scope).
  function disputed(o) {
    if (!o.flagged_gateways) return null;
    return el('span', { class: 'flag', title: 'a gateway reports far from the others', text: ` ⚠ ${o.flagged_gateways} gateway(s) disputed` });
  }

  function leaderboard(body, params) {
    const rows = (body.orchestrators || []).map((o) =>
      el('tr', { 'data-address': o.address, class: o.status === 'ok' ? null : 'dim' },
        td(o.rank === null ? dash : String(o.rank), 'num'),
        td(el('a', { href: link('/o/' + o.address, params), class: 'addr', title: o.address, text: short(o.address) })),
        td([o.status === 'ok' ? 'ok' : 'insufficient data', disputed(o)]),
        scoreCell(o),
        td(num(o.legacy_score, 2), 'num'),
        td(el('span', { title: `observed by ${o.gateways ?? '?'} gateway(s)`, text: String(o.attempts) }), 'num'),
        td(pct(o.startup_success_rate), 'num'),
        td(pct(o.swap_rate), 'num'),
        td(`${ms(o.ptff_ms && o.ptff_ms.p50)} / ${ms(o.ptff_ms && o.ptff_ms.p95)}`, 'num'),
        td(`${ms(o.e2e_ms && o.e2e_ms.p50)} / ${ms(o.e2e_ms && o.e2e_ms.p95)}`, 'num'),
        td(num(o.fps && o.fps.p50, 1), 'num'),
        td(num(o.inference_minutes, 1), 'num'),
        selfReported(o.self_reported)));
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 13, class: 'empty', text: 'No orchestrator has data in this window.' })));
    return table('Orchestrators by SLA score',
      ['#', 'Orchestrator', 'Status', 'SLA score', 'Legacy', 'Attempts', 'Startup success', 'Swap rate', 'PTFF p50 / p95', 'E2E p50 / p95', 'FPS p50', 'Inference min', 'Self-reported'],
      rows, { id: 'leaderboard' });
  }

  function demandTable(body) {
    const rows = (body.rows || []).map((r) =>
      el('tr', {}, td(r.model_id), td(r.pipeline), td(r.region), td(String(r.sessions), 'num'), td(String(r.attempts), 'num'), td(num(r.inference_minutes, 1), 'num')));
    const t = body.totals || {};
    rows.push(el('tr', { class: 'total' }, td('Total'), td(''), td(''), td(String(t.sessions ?? dash), 'num'), td(String(t.attempts ?? dash), 'num'), td(num(t.inference_minutes, 1), 'num')));
    return table('Network demand', ['Model', 'Pipeline', 'Region', 'Sessions', 'Attempts', 'Inference min'], rows, { id: 'demand' });
  }

  function breakdown(caption, key, items) {
    const rows = (items || []).map((b) =>
      el('tr', {}, td(key === 'model' ? `${b.model_id} (${b.pipeline})` : b.region), td(String(b.attempts), 'num'),
        td(pct(b.startup_success_rate), 'num'), td(pct(b.swap_rate), 'num'), td(pct(b.failure_rate), 'num'),
        td(`${ms(b.ptff_ms && b.ptff_ms.p50)} / ${ms(b.ptff_ms && b.ptff_ms.p95)}`, 'num'),
        td(`${ms(b.e2e_ms && b.e2e_ms.p50)} / ${ms(b.e2e_ms && b.e2e_ms.p95)}`, 'num'),
        td(num(b.fps && b.fps.p50, 1), 'num'), td(num(b.inference_minutes, 1), 'num')));
    return table(caption, [key === 'model' ? 'Model' : 'Region', 'Attempts', 'Startup success', 'Swap rate', 'Failure rate', 'PTFF p50 / p95', 'E2E p50 / p95', 'FPS p50', 'Inference min'], rows);
  }

  // ---- charts ------------------------------------------------------------
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // series: [{name, points: [[t_ms, y or null], …]}]; a null or a gap of more
  // than 1.5 steps breaks the line.
  function lineChart(title, series, opts) {
    const o = Object.assign({ maxY: null, format: null, withDate: false }, opts);
    const W = 640, H = 200, L = 56, R = 12, T = 12, B = 28;
    const all = series.flatMap((s) => s.points).filter((p) => isNum(p[1]));
    const fig = el('figure', { class: 'chart' });
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, class: 'chart-svg' });
    const t = svg('title');
    t.textContent = title;
    root.append(t);
    if (all.length === 0) {
      const msg = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis-label' });
      msg.textContent = 'no data';
      root.append(msg);
    } else {
      let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
      if (x0 === x1) { x0 -= 30000; x1 += 30000; }
      const y1 = o.maxY !== null ? o.maxY : niceMax(Math.max(...all.map((p) => p[1])));
      const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
      const sy = (y) => T + (1 - y / y1) * (H - T - B);
      // Tick labels with as many decimals as the scale needs (0, 0.25, … for small counts).
      const format = o.format || ((v) => String(Number(v.toFixed(y1 >= 10 ? 0 : y1 >= 1 ? 2 : 3))));
      for (let i = 0; i <= 4; i++) {
        const v = (y1 * i) / 4, y = sy(v);
        root.append(svg('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
        const lab = svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'axis-label' });
        lab.textContent = format(v);
        root.append(lab);
      }
      for (let i = 0; i <= 4; i++) {
        const x = x0 + ((x1 - x0) * i) / 4;
        const lab = svg('text', { x: sx(x), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'axis-label' });
        lab.textContent = utc(x, o.withDate);
        root.append(lab);
      }
      series.forEach((s, idx) => {
        const pts = s.points.slice().sort((a, b) => a[0] - b[0]);
        const steps = [];
        for (let i = 1; i < pts.length; i++) steps.push(pts[i][0] - pts[i - 1][0]);
        steps.sort((a, b) => a - b);
        const step = steps.length ? steps[Math.floor(steps.length / 2)] : Infinity;
        let d = '', prev = null;
        for (const [x, y] of pts) {
          if (!isNum(y)) { prev = null; continue; }
          const broken = prev === null || x - prev > step * 1.5;
          d += `${broken ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(Math.min(y, y1)).toFixed(1)} `;
          prev = x;
        }
        if (d) root.append(svg('path', { d: d.trim(), class: `line s${idx}`, 'data-series': s.name }));
        if (pts.filter((p) => isNum(p[1])).length <= 2) {
          for (const [x, y] of pts) if (isNum(y)) root.append(svg('circle', { cx: sx(x), cy: sy(Math.min(y, y1)), r: 3, class: `dot s${idx}` }));
        }
      });
    }
    const legend = el('figcaption', {}, el('strong', { text: title }),
      series.map((s, idx) => el('span', { class: 'legend' }, el('span', { class: `swatch s${idx}` }), s.name)));
    fig.append(root, legend);
    return fig;
  }

  function charts(detail) {
    const series = detail.series || [];
    const hourly = detail.window && (detail.window.name === '24h' || detail.window.name === '7d');
    const pick = (f) => series.map((p) => [p.start_ms, f(p)]);
    const pv = (obj, k) => (obj && isNum(obj[k]) ? obj[k] : null);
    const common = { withDate: hourly };
    return el('div', { class: 'charts', id: 'charts' },
      lineChart('Prompt to first frame (ms)', [
        { name: 'p50', points: pick((p) => pv(p.ptff_ms, 'p50')) },
        { name: 'p95', points: pick((p) => pv(p.ptff_ms, 'p95')) }], common),
      lineChart('First-segment E2E latency (ms)', [
        { name: 'p50', points: pick((p) => pv(p.e2e_ms, 'p50')) },
        { name: 'p95', points: pick((p) => pv(p.e2e_ms, 'p95')) }], common),
      lineChart('Output FPS (p50)', [{ name: 'fps p50', points: pick((p) => (isNum(p.fps_p50) ? p.fps_p50 : null)) }], common),
      lineChart('Startup success', [{ name: 'success rate', points: pick((p) => (isNum(p.startup_success_rate) ? p.startup_success_rate : null)) }],
        Object.assign({ maxY: 1, format: (v) => pct(v, 0) }, common)),
      lineChart('Swaps away', [{ name: 'swaps', points: pick((p) => (isNum(p.swaps) ? p.swaps : null)) }], common));
  }

  // ---- pages -------------------------------------------------------------
  async function renderLeaderboard(view, params, gen) {
    const q = requestQuery(params);
    const [list, demand] = await Promise.all([api('v1/sla/orchestrators', q), api('v1/network/demand', q)]);
    if (gen !== generation) return;
    metaLine(list);
    view.replaceChildren(
      el('section', {}, policyNote(list.policy), leaderboard(list, params)),
      el('section', {}, demandTable(demand)));
  }

  function card(label, value, extra) {
    return el('div', { class: 'card' }, el('div', { class: 'card-label', text: label }), el('div', { class: 'card-value', text: value }), extra ? el('div', { class: 'card-extra', text: extra }) : null);
  }

  async function renderOrchestrator(view, address, params, gen) {
    let detail;
    try {
      detail = await api('v1/sla/orchestrators/' + encodeURIComponent(address), requestQuery(params));
    } catch (err) {
      if (gen !== generation) return;
      view.replaceChildren(el('p', {}, el('a', { href: link('/', params), text: '← leaderboard' })));
      throw err;
    }
    if (gen !== generation) return;
    metaLine(detail);
    const s = detail.summary || {};
    const f = s.failures || {};
    const sr = s.self_reported;
    const comp = s.components || {};
    const failures = Object.entries(f).map(([k, v]) => el('tr', {}, td(k.replace(/_/g, ' ')), td(String(v), 'num')));
    const sections = [
      el('p', {}, el('a', { href: link('/', params), text: '← leaderboard' })),
      el('h2', { class: 'addr', text: address }),
      policyNote(detail.policy),
      el('div', { class: 'cards' },
        card('Status', s.status === 'ok' ? 'ok' : 'insufficient data'),
        card('SLA score', num(s.sla_score, 2), `coverage ${num(comp.coverage, 2)} · reliability ${num(comp.reliability, 2)} · quality ${num(comp.quality, 2)}`),
        card('Legacy score', num(s.legacy_score, 3)),
        card('Attempts', String(s.attempts ?? dash), `${s.sessions ?? dash} sessions`),
        card('Gateways', String(s.gateways ?? dash), s.flagged_gateways ? `⚠ ${s.flagged_gateways} far from the others` : 'observing in this window'),
        card('Startup success', pct(s.startup_success_rate)),
        card('Swap rate', pct(s.swap_rate)),
        card('Failure rate', pct(s.failure_rate), `${s.excused_failures ?? 0} excused`),
        card('PTFF p50 / p95', `${ms(s.ptff_ms && s.ptff_ms.p50)} / ${ms(s.ptff_ms && s.ptff_ms.p95)}`),
        card('E2E p50 / p95', `${ms(s.e2e_ms && s.e2e_ms.p50)} / ${ms(s.e2e_ms && s.e2e_ms.p95)}`),
        card('FPS p50', num(s.fps && s.fps.p50, 1), `jitter ${num(s.fps && s.fps.jitter, 3)}`),
        card('Inference minutes', num(s.inference_minutes, 1)),
        card('Self-reported', sr ? `fps ${num(sr.fps_p50, 1)} · CUE ${num(sr.cue, 2)}` : dash, sr && sr.disagrees ? '⚠ disagrees with gateways; never raises the score' : 'shown, never scored')),
      charts(detail),
      table('Failures by class', ['Class', 'Count'], failures),
      breakdown('By model', 'model', detail.by_model),
      breakdown('By gateway region', 'region', detail.by_region),
    ];
    if (Array.isArray(detail.by_gateway)) {
      sections.push(table('By gateway (restricted)', ['Gateway', 'Attempts', 'Startup success', 'PTFF mean', 'Far from the others'],
        detail.by_gateway.map((g) => el('tr', {}, td(g.gateway, 'addr'), td(String(g.attempts), 'num'),
          td(pct(g.startup_success_rate), 'num'), td(ms(g.ptff_mean_ms), 'num'), td(g.flagged ? '⚠ yes' : 'no')))));
    }
    view.replaceChildren(...sections);
  }

  async function render() {
    const gen = ++generation;
    const r = route();
    syncFilterControls(r.params);
    const view = document.getElementById('view');
    view.setAttribute('aria-busy', 'true');
    try {
      if (r.page === 'orchestrator') await renderOrchestrator(view, r.address, r.params, gen);
      else await renderLeaderboard(view, r.params, gen);
      if (gen === generation) showError(null);
    } catch (err) {
      if (gen === generation) showError(err);
    } finally {
      if (gen === generation) view.setAttribute('aria-busy', 'false');
    }
  }

  async function loadChoices() {
    const [models, regions, policies] = await Promise.all([api('v1/models'), api('v1/regions'), api('v1/policies')]);
    const policy = document.getElementById('f-policy');
    for (const p of policies.policies || []) {
      policy.append(el('option', { value: p.name, text: p.name, title: `${p.id} version ${p.version}, hash ${p.hash}` }));
    }
    if (typeof policies.default === 'string' && policies.default) DEFAULTS.policy = policies.default;
    const region = document.getElementById('f-region');
    for (const name of regions.regions || []) region.append(el('option', { value: name, text: name }));
    const model = document.getElementById('f-model');
    for (const m of models.models || []) model.append(el('option', { value: m.id, text: `${m.id} (${m.pipeline})` }));
  }

  async function start() {
    for (const k of FILTERS) document.querySelector(`#filters select[name="${k}"]`).addEventListener('change', onFilterChange);
    document.getElementById('filters').addEventListener('submit', (e) => e.preventDefault());
    window.addEventListener('hashchange', render);
    try {
      await loadChoices();
    } catch (err) {
      showError(err);
    }
    await render();
    document.body.setAttribute('data-ready', 'true');
  }

  document.addEventListener('DOMContentLoaded', start);
})();
