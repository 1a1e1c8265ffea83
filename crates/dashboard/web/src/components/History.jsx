// A feature's history in one environment (docs/history.md): every change recorded a version
// (who, when); a version's changes against the one before it, in words; restoring a version
// (after a confirmation) applies its configuration as a new change.
import { useState } from 'preact/hooks';
import { all, get, post, query } from '../lib/api.js';
import { dateTime, showValue, who } from '../lib/format.js';
import { Alert, Button, Dialog, Loading, Pager, toast, useLoad } from './ui.jsx';

const PAGE_SIZE = 10;

const KIND = {
  change: 'Change',
  restore: 'Restore',
  baseline: 'Found as it was',
};

export const FIELD = {
  enabled: 'On/off',
  feature_state_value: 'Value',
  multivariate_feature_state_values: 'Variation allocations',
  priority: 'Priority',
};

export function shown(field, v) {
  if (field === 'enabled') return v ? 'on' : 'off';
  if (field === 'priority') return typeof v === 'number' ? String(v + 1) : '—';
  if (field === 'multivariate_feature_state_values') {
    if (!Array.isArray(v) || v.length === 0) return 'none';
    return v.map((a) => `${a.percentage_allocation}%`).join(' / ');
  }
  const s = showValue(v);
  return s === '' ? 'no value' : s;
}

function authorOf(v) {
  if (v.kind === 'baseline') return 'Flagstone (state found before a change)';
  return who(v.author);
}

/** One line per difference: "Value: "a" → "b"". */
export function DiffList({ diff, segmentName }) {
  if (!diff) return <p class="muted">The first version recorded: there is nothing before it to compare with.</p>;
  const lines = [];
  for (const f of diff.fields_changed) {
    lines.push(
      <li key={`f-${f.field}`}>
        <strong>{FIELD[f.field] || f.field}</strong> in the environment default: <del>{shown(f.field, f.before)}</del> →{' '}
        <ins>{shown(f.field, f.after)}</ins>
      </li>,
    );
  }
  for (const o of diff.overrides_added) {
    lines.push(
      <li key={`a-${o.segment}`}>
        Override for <strong>{segmentName(o.segment)}</strong> added ({shown('enabled', o.enabled)}
        {showValue(o.feature_state_value) !== '' ? `, value ${showValue(o.feature_state_value)}` : ''})
      </li>,
    );
  }
  for (const o of diff.overrides_removed) {
    lines.push(
      <li key={`r-${o.segment}`}>
        Override for <strong>{segmentName(o.segment)}</strong> removed
      </li>,
    );
  }
  for (const o of diff.overrides_changed) {
    for (const f of o.fields_changed) {
      lines.push(
        <li key={`c-${o.segment}-${f.field}`}>
          <strong>{FIELD[f.field] || f.field}</strong> of the override for <strong>{segmentName(o.segment)}</strong>:{' '}
          <del>{shown(f.field, f.before)}</del> → <ins>{shown(f.field, f.after)}</ins>
        </li>,
      );
    }
  }
  if (lines.length === 0) return <p class="muted">Nothing changed (saved again as it was).</p>;
  return <ul class="changes">{lines}</ul>;
}

export function HistoryCard({ feature, env, project, canRestore, onRestored }) {
  const [page, setPage] = useState(1);
  const [open, setOpen] = useState(null);
  const [restoring, setRestoring] = useState(null);
  const list = useLoad(
    () => get(`/environments/${env.api_key}/features/${feature.id}/versions/${query({ page, page_size: PAGE_SIZE })}`),
    [feature.id, env.api_key, page],
  );
  const segments = useLoad(() => all(`/projects/${project}/segments/`).catch(() => []), [project]);
  const segmentName = (id) => (segments.data || []).find((s) => s.id === id)?.name ?? `a deleted segment (#${id})`;
  const newest = page === 1 ? list.data?.results[0]?.id : null;
  return (
    <section class="card" aria-labelledby="history-title">
      <h2 id="history-title">History in {env.name}</h2>
      <p class="hint">
        Every change to this feature in {env.name} is kept: its on/off state, value, allocations and segment overrides. Restoring a version
        makes it the current configuration again, as a new change.
      </p>
      <Alert error={list.error} />
      {!list.data ? (
        !list.error && <Loading label="Loading history…" />
      ) : list.data.count === 0 ? (
        <p class="muted">No changes recorded yet.</p>
      ) : (
        <>
          <table class="table compact history">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">What</th>
                <th scope="col" class="hide-phone">
                  By
                </th>
                <th scope="col">When</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.results.map((v) => (
                <tr key={v.id}>
                  <td>
                    {v.id}
                    {v.id === newest && <span class="chip chip-info">current</span>}
                  </td>
                  <td>
                    {KIND[v.kind] || v.kind}
                    {v.restored_from && <span class="muted small"> of version {v.restored_from}</span>}
                  </td>
                  <td class="hide-phone">{authorOf(v)}</td>
                  <td>{dateTime(v.created_at)}</td>
                  <td class="actions">
                    <Button kind="ghost" onClick={() => setOpen(v)} aria-label={`Changes in version ${v.id}`}>
                      Changes
                    </Button>
                    {canRestore && v.id !== newest && (
                      <Button kind="ghost" onClick={() => setRestoring(v)} aria-label={`Restore version ${v.id}`}>
                        Restore
                      </Button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager page={page} pageSize={PAGE_SIZE} count={list.data.count} onPage={setPage} label="versions" />
        </>
      )}
      {open && <VersionDialog version={open} env={env} feature={feature} segmentName={segmentName} onClose={() => setOpen(null)} />}
      {restoring && (
        <RestoreDialog
          version={restoring}
          env={env}
          feature={feature}
          segmentName={segmentName}
          onClose={() => setRestoring(null)}
          onRestored={() => {
            setRestoring(null);
            setPage(1);
            list.reload();
            onRestored();
          }}
        />
      )}
    </section>
  );
}

function useVersion(env, feature, version) {
  return useLoad(() => get(`/environments/${env.api_key}/features/${feature.id}/versions/${version.id}/`), [version.id]);
}

/** What a version's configuration is, in words. */
function Configuration({ config, segmentName }) {
  return (
    <ul class="changes">
      <li>
        Environment default: <strong>{shown('enabled', config.enabled)}</strong>
        {showValue(config.feature_state_value) !== '' && (
          <>
            , value <code class="value">{showValue(config.feature_state_value)}</code>
          </>
        )}
        {config.multivariate_feature_state_values.length > 0 && `, allocations ${shown('multivariate_feature_state_values', config.multivariate_feature_state_values)}`}
      </li>
      {config.segment_overrides.length === 0 ? (
        <li>No segment overrides</li>
      ) : (
        config.segment_overrides.map((o, i) => (
          <li key={o.segment}>
            Override {i + 1}: <strong>{segmentName(o.segment)}</strong> {shown('enabled', o.enabled)}
            {showValue(o.feature_state_value) !== '' && (
              <>
                , value <code class="value">{showValue(o.feature_state_value)}</code>
              </>
            )}
          </li>
        ))
      )}
    </ul>
  );
}

function VersionDialog({ version, env, feature, segmentName, onClose }) {
  const v = useVersion(env, feature, version);
  return (
    <Dialog title={`Version ${version.id} of ${feature.name}`} onClose={onClose} wide>
      <p class="muted">
        {KIND[version.kind] || version.kind} by {authorOf(version)}, {dateTime(version.created_at)}
      </p>
      <Alert error={v.error} />
      {v.data ? (
        <>
          <h3>What changed{v.data.previous_version ? ` since version ${v.data.previous_version}` : ''}</h3>
          <DiffList diff={v.data.diff} segmentName={segmentName} />
          <h3>The configuration after it</h3>
          <Configuration config={v.data.configuration} segmentName={segmentName} />
        </>
      ) : (
        !v.error && <Loading />
      )}
      <div class="form-actions">
        <Button kind="primary" onClick={onClose}>
          Close
        </Button>
      </div>
    </Dialog>
  );
}

function RestoreDialog({ version, env, feature, segmentName, onClose, onRestored }) {
  const v = useVersion(env, feature, version);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const restore = async () => {
    setBusy(true);
    setError(null);
    try {
      const made = await post(`/environments/${env.api_key}/features/${feature.id}/versions/${version.id}/restore/`);
      toast(`${feature.name} in ${env.name} restored to version ${version.id} (now version ${made.id})`);
      onRestored();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Restore version ${version.id}?`} onClose={onClose} wide>
      <p>
        {feature.name} in {env.name} will be configured as it was after version {version.id} ({dateTime(version.created_at)}). SDKs get the
        change within seconds; it is recorded as a new version, so it can be undone the same way.
      </p>
      <Alert error={error} />
      {v.data ? <Configuration config={v.data.configuration} segmentName={segmentName} /> : !v.error && <Loading />}
      <Alert error={v.error} />
      <div class="form-actions">
        <Button onClick={onClose}>Cancel</Button>
        <Button kind="primary" onClick={restore} busy={busy} disabled={busy || !v.data}>
          Restore version {version.id}
        </Button>
      </div>
    </Dialog>
  );
}
