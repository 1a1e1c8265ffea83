//! Conditions decided before the walk: those that read nothing but traits are
//! evaluated once per environment as if every trait were absent ([`preset`]), and per
//! identity only the conditions on the traits it has are evaluated again
//! ([`EvalState::decide_traits`](super::EvalState)).

use std::cell::Cell;

use super::{Decided, EvalState, FALSE, TRUE, UNKNOWN};
use crate::compile::{Accessor, CompiledCondition, CompiledEnvironment, Program, Target};

/// Fills [`Program::presets`](crate::compile::Program) and its `readers`: every condition
/// whose value comes from traits alone is evaluated once, here, as if the identity had
/// none of them. An identity has a few of an environment's traits, so most of those
/// conditions start decided and the walk passes them like any memoised outcome.
///
/// The outcomes come from the evaluation code itself (a state without identity), so
/// there is no second copy of what a missing trait means for each operator.
pub(crate) fn preset(env: &mut CompiledEnvironment) {
    let program = &env.program;
    let mut presets = vec![UNKNOWN; program.conditions.len()];
    let mut readers: Vec<Vec<u32>> = vec![Vec::new(); env.trait_slots.len()];
    {
        let blank = (0..program.conditions.len())
            .map(|_| Cell::new(UNKNOWN))
            .collect();
        let slots = vec![None; env.trait_slots.len()];
        let state = EvalState::with_memo(env, None, slots, blank);
        // The terminals' two pseudo-conditions are preset by `with_memo`.
        for (c, condition) in program.conditions.iter().enumerate().skip(2) {
            let Some(read) = traits_read(program, condition) else {
                continue;
            };
            if let Decided::Holds(holds) = state.decide(c as u32) {
                presets[c] = if holds { TRUE } else { FALSE };
                for slot in read.into_iter().flatten() {
                    readers[slot].push(c as u32);
                }
            }
        }
    }
    // Grouped by operator, so that deciding a trait's conditions up front
    // (`EvalState::decide_traits`) mostly repeats its last dispatch.
    for list in &mut readers {
        list.sort_by_key(|&c| kind_rank(&program.conditions[c as usize]));
    }
    renumber(&mut env.program, &mut presets, &mut readers);
    env.program.presets = presets;
    env.program.readers = readers.into_iter().map(Vec::into_boxed_slice).collect();
}

/// Renumbers the conditions in the order `EvalState::decide_traits` visits them (each
/// trait's, grouped by operator; then the rest), and reallocates their operands in that
/// order. Deciding a trait's conditions then reads memo slots, conditions and, mostly,
/// operands one after another, where the compiled order scattered them over the
/// environment's memory: on a large environment, an L1 miss per condition.
fn renumber(program: &mut Program, presets: &mut Vec<u8>, readers: &mut [Vec<u32>]) {
    let n = program.conditions.len();
    let mut new_id = vec![u32::MAX; n];
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut place = |c: u32| {
        if new_id[c as usize] == u32::MAX {
            new_id[c as usize] = order.len() as u32;
            order.push(c);
        }
    };
    // The terminals' pseudo-conditions keep their numbers (`MATCH`, `NO_MATCH`).
    (0..2).for_each(&mut place);
    readers.iter().flatten().for_each(|&c| place(c));
    (0..n as u32).for_each(&mut place);
    let compiled = std::mem::take(&mut program.conditions);
    // Cloned, not moved: a clone allocates its operand afresh, after the one before.
    program.conditions = order
        .iter()
        .map(|&c| compiled[c as usize].clone())
        .collect();
    drop(compiled);
    for instr in &mut program.code {
        instr.condition = new_id[instr.condition as usize];
    }
    *presets = order.iter().map(|&c| presets[c as usize]).collect();
    for c in readers.iter_mut().flatten() {
        *c = new_id[*c as usize];
    }
}

/// A condition's operator, as a number to group conditions by.
fn kind_rank(condition: &CompiledCondition) -> u8 {
    match condition {
        CompiledCondition::Never => 0,
        CompiledCondition::IsSet(_) => 1,
        CompiledCondition::IsNotSet(_) => 2,
        CompiledCondition::In(..) => 3,
        CompiledCondition::PercentageSplit(..) => 4,
        CompiledCondition::Modulo(..) => 5,
        CompiledCondition::Regex(..) => 6,
        CompiledCondition::NotContains(..) => 7,
        CompiledCondition::Typed(op, _, operand) => 8 + 2 * (*op as u8) + operand.is_semver() as u8,
    }
}

/// The trait slots a condition's outcome depends on, if nothing else: `None` for
/// conditions on the identity's key or identifier, or on the whole context.
fn traits_read(program: &Program, condition: &CompiledCondition) -> Option<[Option<usize>; 2]> {
    let accessor = match condition {
        CompiledCondition::Never => return Some([None, None]),
        CompiledCondition::PercentageSplit(None, ..) => return None,
        CompiledCondition::PercentageSplit(Some(a), ..)
        | CompiledCondition::IsSet(a)
        | CompiledCondition::IsNotSet(a)
        | CompiledCondition::In(a, _)
        | CompiledCondition::Modulo(a, ..)
        | CompiledCondition::Regex(a, _)
        | CompiledCondition::NotContains(a, _)
        | CompiledCondition::Typed(_, a, _) => *a,
    };
    match &program.accessors[accessor as usize] {
        Accessor::Trait(slot) => Some([Some(*slot), None]),
        Accessor::Path { literal, target } => match target {
            Target::TraitNode(slot) => Some([Some(*literal), Some(*slot)]),
            Target::Constant(_) => Some([Some(*literal), None]),
            Target::IdentityIdentifier | Target::IdentityKey | Target::General(_) => None,
        },
    }
}
