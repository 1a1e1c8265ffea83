// Pipeline health of a project: its publish jobs live (depth, oldest pending age, each
// environment's publish lag), parked publishes with their error and retry/discard, and how much of each
// limit the project uses (document size against its budget included).
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, post } from '../lib/api.js';
import { ago, bytes, duration, toMs } from '../lib/format.js';
import { usePlace } from '../lib/session.jsx';
import { Alert, Button, Empty, PageHeader, toast } from '../components/ui.jsx';
import { Chart } from '../components/Chart.jsx';

const POLL_MS = 2000;
const KEEP = 150; // points: five minutes at one every two seconds

/** What the page shows, from the project's environments and their publish jobs. */
function summarise(usage, jobs, now) {
  const ids = new Set(usage.environments.map((e) => e.environment_id));
  const mine = jobs.filter((j) => ids.has(j.environment_id));
  const count = (state) => mine.filter((j) => j.state === state).length;
  const pending = mine.filter((j) => j.state === 'pending').map((j) => toMs(j.first_requested_at));
  return {
    pending: count('pending'),
    running: count('running'),
    parked: mine.filter((j) => j.state === 'parked'),
    oldestPendingMs: pending.length ? now - Math.min(...pending) : null,
    behind: usage.environments.filter((e) => e.published_revision !== e.revision).length,
    // Publish lag: how long the environment's newest change has waited to reach SDKs.
    lag: Object.fromEntries(
      usage.environments.map((e) => {
        const job = mine.find((j) => j.environment_id === e.environment_id);
        const waiting = job && e.published_revision !== e.revision;
        return [e.name, waiting ? Math.max(0, now - toMs(job.first_requested_at)) : 0];
      }),
    ),
  };
}

export function Pipeline({ params }) {
  const place = usePlace();
  const [usage, setUsage] = useState(null);
  const [summary, setSummary] = useState(null);
  const [error, setError] = useState(null);
  const history = useRef({ t: [], pending: [], running: [], parked: [], oldest: [], lag: {} });
  const [tick, setTick] = useState(0);

  const poll = async () => {
    try {
      const [u, jobs] = await Promise.all([get(`/projects/${params.project}/usage/`), get('/tasks/?page_size=1000')]);
      const now = Date.now();
      const s = summarise(u, jobs.results, now);
      const h = history.current;
      const push = (arr, v) => {
        arr.push(v);
        if (arr.length > KEEP) arr.shift();
      };
      push(h.t, now / 1000);
      push(h.pending, s.pending);
      push(h.running, s.running);
      push(h.parked, s.parked.length);
      push(h.oldest, (s.oldestPendingMs ?? 0) / 1000);
      for (const [name, ms] of Object.entries(s.lag)) {
        const lag = h.lag[name] || (h.lag[name] = new Array(h.t.length - 1).fill(0));
        push(lag, ms / 1000);
      }
      setUsage(u);
      setSummary(s);
      setError(null);
      setTick((n) => n + 1);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    history.current = { t: [], pending: [], running: [], parked: [], oldest: [], lag: {} };
    poll();
    const t = setInterval(poll, POLL_MS);
    return () => clearInterval(t);
  }, [params.project]);

  const h = history.current;
  const envNames = usage ? usage.environments.map((e) => e.name) : [];
  const nameOf = (id) => usage?.environments.find((e) => e.environment_id === id)?.name ?? `environment ${id}`;
  const act = async (job, what) => {
    try {
      await post(`/tasks/${job.environment_id}/${what}/`);
      toast(what === 'retry' ? `Publishing ${nameOf(job.environment_id)} again` : `Parked publish of ${nameOf(job.environment_id)} discarded`);
      poll();
    } catch (err) {
      toast(err.message, 'error');
    }
  };

  return (
    <>
      <PageHeader
        title="Pipeline health"
        subtitle={`How quickly changes in ${place.project?.name} reach SDKs. Every change is built into an environment document and published; this page refreshes every 2 seconds.`}
      />
      <Alert error={error} />
      {summary && (
        <div class="stats" aria-live="polite">
          <Stat label="Waiting to publish" value={summary.pending} />
          <Stat label="Publishing now" value={summary.running} />
          <Stat label="Parked (failing)" value={summary.parked.length} bad={summary.parked.length > 0} />
          <Stat label="Oldest waiting" value={summary.oldestPendingMs === null ? 'none' : duration(summary.oldestPendingMs)} />
          <Stat label="Environments behind" value={summary.behind} bad={summary.parked.length > 0} />
        </div>
      )}
      <section class="card">
        <h2>Parked publishes</h2>
        {!summary || summary.parked.length === 0 ? (
          <p class="muted">None. A publish that keeps failing is parked here with its error; the environment keeps serving its last good document.</p>
        ) : (
          <ul class="parked-list">
            {summary.parked.map((j) => (
              <li key={j.environment_id} class="parked">
                <div>
                  <strong>{nameOf(j.environment_id)}</strong> <span class="chip chip-bad">{(j.park_reason || 'parked').replaceAll('_', ' ')}</span>
                  <div class="muted small">
                    Revision {j.wanted_revision} waiting since {ago(j.first_requested_at)}, {j.attempts} failed attempt{j.attempts === 1 ? '' : 's'}; serving revision{' '}
                    {j.published_revision ?? 'none'}.
                  </div>
                  {j.last_error && <pre class="error-text">{j.last_error}</pre>}
                </div>
                <div class="row">
                  <Button kind="primary" onClick={() => act(j, 'retry')} aria-label={`Retry publishing ${nameOf(j.environment_id)}`}>
                    Retry
                  </Button>
                  <Button onClick={() => act(j, 'discard')} aria-label={`Discard parked publish of ${nameOf(j.environment_id)}`}>
                    Discard
                  </Button>
                </div>
              </li>
            ))}
          </ul>
        )}
      </section>
      <div class="charts">
        <Chart title="Queue depth" series={['waiting', 'publishing', 'parked']} data={[h.t, h.pending, h.running, h.parked]} tick={tick} />
        <Chart title="Oldest waiting publish" series={['age']} unit=" s" data={[h.t, h.oldest]} tick={tick} />
        {envNames.length > 0 && (
          <Chart title="Publish lag per environment" series={envNames} unit=" s" data={[h.t, ...envNames.map((n) => h.lag[n] || [])]} tick={tick} />
        )}
      </div>
      {usage && <Usage usage={usage} />}
    </>
  );
}

function Stat({ label, value, bad }) {
  return (
    <div class={`stat ${bad ? 'stat-bad' : ''}`}>
      <div class="stat-value">{value}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
}

function Bar({ label, used, max, format = (n) => n.toLocaleString() }) {
  const pct = max > 0 ? Math.min(100, (used / max) * 100) : 0;
  const level = pct >= 90 ? 'bad' : pct >= 70 ? 'warn' : 'ok';
  return (
    <div class="bar-row">
      <div class="bar-label">
        <span>{label}</span>
        <span class="muted">
          {used === null || used === undefined ? 'not published yet' : `${format(used)} of ${format(max)}`}
        </span>
      </div>
      <div class="bar" role="meter" aria-label={label} aria-valuemin="0" aria-valuemax={max} aria-valuenow={used ?? 0} aria-valuetext={`${pct.toFixed(1)}%`}>
        <div class={`bar-fill bar-${level}`} style={{ width: `${pct}%` }} />
      </div>
    </div>
  );
}

function Usage({ usage }) {
  const l = usage.limits;
  return (
    <section class="card">
      <h2>Limits</h2>
      <p class="hint">Each limit keeps environment documents small enough to build and serve quickly. A change that would pass one is refused with a clear error.</p>
      <div class="usage-grid">
        <div>
          <h3>Project</h3>
          <Bar label="Features" used={usage.features} max={l.max_features} />
          <Bar label="Segments" used={usage.segments} max={l.max_segments} />
          <Bar label="Conditions in the largest segment" used={usage.largest_segment_conditions} max={l.max_conditions_per_segment} />
          <Bar label="Deepest rule nesting" used={usage.deepest_segment_rules} max={l.max_rule_depth} />
        </div>
        {usage.environments.map((e) => (
          <div key={e.environment_id}>
            <h3>{e.name}</h3>
            <Bar label={`${e.name} document size`} used={e.document_bytes} max={l.max_document_bytes} format={bytes} />
            <Bar label={`${e.name} segment overrides`} used={e.segment_overrides} max={l.max_segment_overrides} />
            <Bar label={`${e.name} identity overrides`} used={e.identity_overrides} max={l.max_identity_overrides} />
            <p class="muted small">
              Revision {e.revision}
              {e.published_revision === e.revision ? ' published' : `, serving ${e.published_revision ?? 'nothing yet'}`}
              {e.built_at ? ` · built ${ago(e.built_at)} in ${duration(e.build_ms)}` : ''}
            </p>
          </div>
        ))}
      </div>
      {usage.environments.length === 0 && <Empty title="No environments yet" />}
    </section>
  );
}
