//! Every live feature state of an environment in one list, as Flagsmith's
//! `GET /api/v1/features/featurestates/?environment=` gives it (`SimpleFeatureStateViewSet`):
//! the environment defaults, the segment overrides (Flagsmith's feature segments' states) and
//! the identity overrides, filtered by `feature` and `feature_segment` as its
//! `filterset_fields` filter them. Flagstone keeps the three in separate tables with separate
//! ids, so the list is their concatenation in that order (defaults by id, overrides by feature
//! and priority, identity overrides by identity), paged across the three.

use super::states::{self, FeatureState};
use crate::identities::overrides::{self as identity_overrides, IdentityOverride};
use crate::segments::overrides::{self as segment_overrides, SegmentOverride};
use crate::{Page, PageRequest, Result, Tx};

/// One state of the list.
#[derive(Debug, Clone)]
pub enum EnvironmentState {
    /// The environment default of a feature.
    Default(FeatureState),
    /// A segment override: the state of the feature segment with the same id.
    Segment(SegmentOverride),
    Identity(IdentityOverride),
}

/// Flagsmith's filters (exact matches); both optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateFilter {
    pub feature: Option<i64>,
    /// Only the state of this feature segment (defaults and identity overrides have none).
    pub feature_segment: Option<i64>,
}

/// Which part of a window over `count` rows starting at `offset` (the rows before this part
/// already skipped) falls in `0..count`: `(offset in this part, how many)`.
fn part(offset: i64, remaining: i64, count: i64) -> (i64, i64) {
    if offset >= count {
        return (0, 0);
    }
    (offset, remaining.min(count - offset))
}

/// One page of the environment's states.
pub async fn list(
    tx: &mut Tx,
    environment_id: i64,
    filter: StateFilter,
    page: PageRequest,
) -> Result<Page<EnvironmentState>> {
    let mut offset = page.offset();
    let mut remaining = page.page_size;
    let mut results = Vec::new();
    let mut count = 0;

    // Defaults and identity overrides belong to no feature segment.
    let unsegmented = filter.feature_segment.is_none();
    if unsegmented {
        let (n, _) = states::window(tx, environment_id, filter.feature, 0, 0).await?;
        let (at, take) = part(offset, remaining, n);
        if take > 0 {
            let (_, rows) = states::window(tx, environment_id, filter.feature, at, take).await?;
            remaining -= rows.len() as i64;
            results.extend(rows.into_iter().map(EnvironmentState::Default));
        }
        offset = (offset - n).max(0);
        count += n;
    }

    let (n, _) = segment_overrides::window(
        tx,
        environment_id,
        filter.feature,
        filter.feature_segment,
        0,
        0,
    )
    .await?;
    let (at, take) = part(offset, remaining, n);
    if take > 0 {
        let (_, rows) = segment_overrides::window(
            tx,
            environment_id,
            filter.feature,
            filter.feature_segment,
            at,
            take,
        )
        .await?;
        remaining -= rows.len() as i64;
        results.extend(rows.into_iter().map(EnvironmentState::Segment));
    }
    offset = (offset - n).max(0);
    count += n;

    if unsegmented {
        let (n, _) =
            identity_overrides::environment_window(tx, environment_id, filter.feature, 0, 0)
                .await?;
        let (at, take) = part(offset, remaining, n);
        if take > 0 {
            let (_, rows) = identity_overrides::environment_window(
                tx,
                environment_id,
                filter.feature,
                at,
                take,
            )
            .await?;
            results.extend(rows.into_iter().map(EnvironmentState::Identity));
        }
        count += n;
    }
    Ok(Page { count, results })
}

#[cfg(test)]
mod tests {
    use super::part;

    #[test]
    fn parts_of_a_window() {
        // Page of 10 at offset 5 over parts of 8, 4, 20 rows.
        assert_eq!(part(5, 10, 8), (5, 3));
        assert_eq!(part(0, 7, 4), (0, 4));
        assert_eq!(part(0, 3, 20), (0, 3));
        // A window past a part takes nothing from it.
        assert_eq!(part(9, 10, 8), (0, 0));
        assert_eq!(part(0, 0, 8), (0, 0));
    }
}
