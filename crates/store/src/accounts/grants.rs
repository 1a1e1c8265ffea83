//! Loads everything a caller holds, for the permission checks of `flagstone-access`: the
//! user's memberships and roles. One read per request; no caching, so a removed member or a
//! revoked grant takes effect on the next request.

use std::collections::BTreeMap;

use flagstone_access::{CallerKind, Grants, Membership, Role, Set};

use crate::{sql, Result, Tx};

/// The grants of a user.
pub async fn of_user(tx: &mut Tx, user_id: i64, superuser: bool) -> Result<Grants> {
    let rows: Vec<(i64, String)> = sql!(tx, |c| {
        sqlx::query_as("SELECT organisation_id, role FROM organisation_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(c)
            .await?
    });
    let mut organisations = BTreeMap::new();
    for (org, role) in rows {
        // An unknown role (written by a newer version) grants nothing beyond membership.
        let role = Role::parse(&role).unwrap_or(Role::User);
        organisations.insert(
            org,
            Membership {
                role,
                permissions: Set::empty(),
            },
        );
    }
    Ok(Grants {
        superuser,
        organisations,
        ..Grants::nothing(CallerKind::User { user_id })
    })
}
