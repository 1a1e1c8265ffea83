// Edits a segment's rules: nested ALL/ANY/NONE rules holding conditions, with every operator
// Flagsmith has. The API validates (same checks, same limits); its errors name the exact field
// (`rules[0].rules[1].conditions[0].value`) and are shown next to that field.
import { Button, SelectField, TextField } from './ui.jsx';

/** Flagsmith's operators (the engine's 14), as people read them. */
export const OPERATORS = [
  { value: 'EQUAL', label: 'is equal to' },
  { value: 'NOT_EQUAL', label: 'is not equal to' },
  { value: 'GREATER_THAN', label: 'is greater than' },
  { value: 'GREATER_THAN_INCLUSIVE', label: 'is greater than or equal to' },
  { value: 'LESS_THAN', label: 'is less than' },
  { value: 'LESS_THAN_INCLUSIVE', label: 'is less than or equal to' },
  { value: 'CONTAINS', label: 'contains' },
  { value: 'NOT_CONTAINS', label: 'does not contain' },
  { value: 'IN', label: 'is one of' },
  { value: 'REGEX', label: 'matches the regular expression' },
  { value: 'IS_SET', label: 'is set' },
  { value: 'IS_NOT_SET', label: 'is not set' },
  { value: 'MODULO', label: 'modulo (divisor|remainder)' },
  { value: 'PERCENTAGE_SPLIT', label: 'falls in a percentage split' },
];

const RULE_TYPES = [
  { value: 'ALL', label: 'All of these' },
  { value: 'ANY', label: 'Any of these' },
  { value: 'NONE', label: 'None of these' },
];

const VALUE_HINTS = {
  IN: 'Comma-separated values, e.g. gb,fr,de',
  MODULO: 'divisor|remainder, e.g. 2|0 for even numbers',
  PERCENTAGE_SPLIT: 'A percentage from 0 to 100 of identities, by a stable hash',
  REGEX: 'Matched from the start of the trait value',
};

export const newCondition = () => ({ property: '', operator: 'EQUAL', value: '' });
export const newRule = (type = 'ALL') => ({ type, conditions: [newCondition()], rules: [] });

/** The rules as the API takes them (empty property/value where the operator ignores them). */
export function toApi(rules) {
  return rules.map((r) => ({
    type: r.type,
    rules: toApi(r.rules || []),
    conditions: (r.conditions || []).map((c) => ({
      operator: c.operator,
      property: c.property,
      value: c.operator === 'IS_SET' || c.operator === 'IS_NOT_SET' ? null : c.value ?? '',
    })),
  }));
}

export function RulesEditor({ rules, onChange, errors = {}, maxDepth = 3, disabled }) {
  return (
    <div class="rules">
      {rules.map((r, i) => (
        <RuleBox
          key={i}
          rule={r}
          path={`rules[${i}]`}
          depth={1}
          maxDepth={maxDepth}
          errors={errors}
          disabled={disabled}
          onChange={(nr) => onChange(rules.map((x, j) => (j === i ? nr : x)))}
          onRemove={() => onChange(rules.filter((_, j) => j !== i))}
        />
      ))}
      {!disabled && (
        <Button onClick={() => onChange([...rules, newRule('ANY')])}>Add rule</Button>
      )}
    </div>
  );
}

function RuleBox({ rule, path, depth, maxDepth, errors, disabled, onChange, onRemove }) {
  const conditions = rule.conditions || [];
  const rules = rule.rules || [];
  const set = (k, v) => onChange({ ...rule, [k]: v });
  const ruleError = errors[path] || errors[`${path}.type`] || errors[`${path}.rules`] || errors[`${path}.conditions`];
  return (
    <fieldset class={`rule rule-${rule.type.toLowerCase()} depth-${depth}`}>
      <legend class="visually-hidden">{depth > 1 ? `Nested rule, level ${depth}` : 'Rule'}</legend>
      <div class="rule-head">
        <SelectField label="Match" value={rule.type} onChange={(v) => set('type', v)} options={RULE_TYPES} disabled={disabled} class="rule-type" />
        {!disabled && (
          <Button kind="ghost" onClick={onRemove} aria-label={`Remove this ${rule.type} rule`}>
            Remove rule
          </Button>
        )}
      </div>
      {ruleError && (
        <p class="field-error" role="alert">
          {ruleError}
        </p>
      )}
      {conditions.map((c, i) => (
        <ConditionRow
          key={i}
          c={c}
          path={`${path}.conditions[${i}]`}
          errors={errors}
          disabled={disabled}
          onChange={(nc) => set('conditions', conditions.map((x, j) => (j === i ? nc : x)))}
          onRemove={() => set('conditions', conditions.filter((_, j) => j !== i))}
        />
      ))}
      {rules.map((r, i) => (
        <RuleBox
          key={i}
          rule={r}
          path={`${path}.rules[${i}]`}
          depth={depth + 1}
          maxDepth={maxDepth}
          errors={errors}
          disabled={disabled}
          onChange={(nr) => set('rules', rules.map((x, j) => (j === i ? nr : x)))}
          onRemove={() => set('rules', rules.filter((_, j) => j !== i))}
        />
      ))}
      {!disabled && (
        <div class="row">
          <Button kind="ghost" onClick={() => set('conditions', [...conditions, newCondition()])}>
            + Condition
          </Button>
          {depth < maxDepth && (
            <Button kind="ghost" onClick={() => set('rules', [...rules, newRule('ANY')])}>
              + Nested rule
            </Button>
          )}
        </div>
      )}
    </fieldset>
  );
}

function ConditionRow({ c, path, errors, disabled, onChange, onRemove }) {
  const noValue = c.operator === 'IS_SET' || c.operator === 'IS_NOT_SET';
  const optionalProperty = c.operator === 'PERCENTAGE_SPLIT';
  return (
    <div class="condition">
      <TextField
        label="Trait"
        value={c.property}
        onInput={(v) => onChange({ ...c, property: v })}
        error={errors[`${path}.property`]}
        placeholder={optionalProperty ? '(identity key)' : 'e.g. plan or $.identity.identifier'}
        disabled={disabled}
      />
      <SelectField
        label="Operator"
        value={c.operator}
        onChange={(v) => onChange({ ...c, operator: v })}
        options={OPERATORS}
        error={errors[`${path}.operator`]}
        disabled={disabled}
      />
      {noValue ? (
        <div class="field placeholder" />
      ) : (
        <TextField
          label="Value"
          value={c.value ?? ''}
          onInput={(v) => onChange({ ...c, value: v })}
          error={errors[`${path}.value`]}
          hint={VALUE_HINTS[c.operator]}
          disabled={disabled}
        />
      )}
      {!disabled && (
        <Button kind="ghost" class="remove-condition" onClick={onRemove} aria-label={`Remove condition on ${c.property || 'trait'}`}>
          ×
        </Button>
      )}
      {errors[path] && <p class="field-error">{errors[path]}</p>}
    </div>
  );
}
