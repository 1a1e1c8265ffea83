// Who is signed in, and where they are: the organisation, project and environment the URL
// names, with the lists the navigation shows. Permissions come from the API's
// my-permissions endpoints; a page asks `can('UPDATE_FEATURE_STATE')`.
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { all, get } from './api.js';

export const Session = createContext(null);
export const useSession = () => useContext(Session);

export const Place = createContext(null);
/** `{organisation, project, environment, projects, environments, reloadPlace}` */
export const usePlace = () => useContext(Place);

/**
 * The signed-in user's permissions on a project and an environment. `admin` grants all.
 * Returns `{can(permission), loaded}`.
 */
export function usePermissions(projectId, envKey) {
  const [state, setState] = useState({ project: null, env: null });
  useEffect(() => {
    let live = true;
    const load = (path) =>
      get(path).then(
        (r) => r,
        // A server without per-user permissions (no such endpoint) checks nothing per user:
        // the API stays the authority either way, refusing what the caller may not do.
        (e) => (e.status === 404 ? { permissions: [], admin: true } : { permissions: [], admin: false, failed: true }),
      );
    Promise.all([
      projectId ? load(`/projects/${projectId}/my-permissions/`) : null,
      envKey ? load(`/environments/${envKey}/my-permissions/`) : null,
    ]).then(([project, env]) => live && setState({ project, env }));
    return () => {
      live = false;
    };
  }, [projectId, envKey]);
  const can = (perm, scope = 'env') => {
    const p = scope === 'project' ? state.project : state.env || state.project;
    if (!p) return false;
    return !!(p.admin || (p.permissions || []).includes(perm));
  };
  return { can, loaded: state.project !== null || state.env !== null, raw: state };
}

export async function loadProjects(orgId) {
  return all(`/projects/?organisation=${orgId}`);
}

export async function loadEnvironments(projectId) {
  return all(`/environments/?project=${projectId}`);
}
