// Edits a flag value: its kind (text, number, true/false, none) and its text.
import { SelectField, TextField, TextArea } from './ui.jsx';
import { VALUE_KINDS, kindOf, parseValue } from '../lib/format.js';

/** Editor state for a value: `{kind, text}`. */
export function valueState(v) {
  const kind = kindOf(v);
  return { kind, text: v === null || v === undefined ? '' : String(v) };
}

/** `{value}` or `{error}` for an editor state. */
export const readValue = (s) => parseValue(s.kind, s.text);

export function ValueEditor({ label = 'Value', state, onChange, error, disabled, multiline }) {
  const parsed = readValue(state);
  const shown = error || parsed.error;
  return (
    <div class="value-editor">
      <SelectField
        label="Type"
        aria-label={`${label} type`}
        value={state.kind}
        onChange={(kind) => onChange({ kind, text: kind === 'boolean' && !['true', 'false'].includes(state.text) ? 'true' : state.text })}
        options={VALUE_KINDS}
        disabled={disabled}
      />
      {state.kind === 'boolean' ? (
        <SelectField
          label={label}
          value={state.text}
          onChange={(text) => onChange({ ...state, text })}
          options={[
            { value: 'true', label: 'true' },
            { value: 'false', label: 'false' },
          ]}
          error={shown}
          disabled={disabled}
        />
      ) : state.kind === 'none' ? null : multiline ? (
        <TextArea label={label} value={state.text} onInput={(text) => onChange({ ...state, text })} error={shown} disabled={disabled} class="mono" />
      ) : (
        <TextField
          label={label}
          value={state.text}
          onInput={(text) => onChange({ ...state, text })}
          error={shown}
          disabled={disabled}
          inputMode={state.kind === 'number' ? 'decimal' : undefined}
          class="mono"
        />
      )}
    </div>
  );
}
