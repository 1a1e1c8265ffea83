// The frame around every signed-in page: the top bar (project and environment pickers, the
// user's menu), the sidebar built from routes.js, and the page the URL names.
import { useEffect, useState } from 'preact/hooks';
import { all, get } from '../lib/api.js';
import { Link, matchPath, navigate, useLocation } from '../lib/router.jsx';
import { Place, useSession } from '../lib/session.jsx';
import { routes, sections } from '../routes.js';
import { Alert, Loading, useLoad } from './ui.jsx';

function findRoute(path) {
  for (const r of routes) {
    const params = matchPath(r.path, path);
    if (params) return { route: r, params };
  }
  return null;
}

/** Fills a route pattern with the current place. */
function fill(pattern, place) {
  return pattern
    .replace(':project', place.project?.id ?? '')
    .replace(':env', place.environment?.api_key ?? '')
    .replace(':org', place.organisation?.id ?? '');
}

/** The environment a person last opened in each project, for this tab's project pages. */
const lastEnvironment = new Map();

function usePlace(params) {
  const orgs = useLoad(() => all('/organisations/'), []);
  const projectId = params.project ? Number(params.project) : null;
  const project = useLoad(async () => (projectId ? get(`/projects/${projectId}/`) : null), [projectId]);
  const orgId = params.org
    ? Number(params.org)
    : project.data?.organisation ?? orgs.data?.[0]?.id ?? null;
  const projects = useLoad(async () => (orgId ? all(`/projects/?organisation=${orgId}`) : []), [orgId]);
  const envs = useLoad(async () => (projectId ? all(`/environments/?project=${projectId}`) : []), [projectId]);
  const environment = params.env ? (envs.data || []).find((e) => e.api_key === params.env) || null : null;
  if (environment) lastEnvironment.set(projectId, environment.api_key);
  // On project pages, the environment last opened in this project (else its first).
  const workingEnvironment =
    environment ||
    (envs.data || []).find((e) => e.api_key === lastEnvironment.get(projectId)) ||
    (envs.data || [])[0] ||
    null;
  const organisation = (orgs.data || []).find((o) => o.id === orgId) || null;
  return {
    loading: orgs.loading || project.loading || envs.loading,
    error: orgs.error || project.error || envs.error,
    organisations: orgs.data || [],
    organisation,
    projects: projects.data || [],
    project: project.data,
    environments: envs.data || [],
    environment,
    workingEnvironment,
    reloadPlace: () => {
      orgs.reload();
      project.reload();
      projects.reload();
      envs.reload();
    },
  };
}

export function Shell() {
  const { path } = useLocation();
  const found = findRoute(path);
  const params = found?.params || {};
  const place = usePlace(params);
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);

  let content;
  if (!found) content = <Alert error={{ message: 'There is no page at this address.' }} />;
  else if (place.error) content = <Alert error={place.error} />;
  else if (params.project && !place.project) content = <Loading />;
  else if (params.env && !place.environment)
    content = place.loading ? <Loading /> : <Alert error={{ message: 'This environment does not exist (or was deleted).' }} />;
  else {
    const Page = found.route.component;
    content = <Page params={params} />;
  }

  return (
    <Place.Provider value={place}>
      <div class={`shell ${menuOpen ? 'menu-open' : ''}`}>
        <TopBar place={place} found={found} onMenu={() => setMenuOpen(!menuOpen)} menuOpen={menuOpen} />
        <Sidebar place={place} found={found} path={path} />
        <main id="main" class="content" tabIndex={-1}>
          {content}
        </main>
      </div>
    </Place.Provider>
  );
}

function TopBar({ place, found, onMenu, menuOpen }) {
  const { user, signOut } = useSession();
  const pattern = found?.route.parent || found?.route.path || '';
  const switchEnv = (key) => {
    const target = pattern.includes(':env') ? pattern : '/projects/:project/environments/:env/features';
    navigate(fill(target, { ...place, environment: { api_key: key } }));
  };
  const switchProject = (id) => navigate(`/projects/${id}/`);
  return (
    <header class="topbar">
      <button type="button" class="icon-btn menu-btn" aria-label="Menu" aria-expanded={menuOpen ? 'true' : 'false'} onClick={onMenu}>
        ☰
      </button>
      <Link href="/" class="brand">
        <span class="brand-mark" aria-hidden="true">
          ⚑
        </span>
        <span>Flagstone</span>
      </Link>
      <div class="pickers">
        {place.projects.length > 0 && (
          <label class="picker">
            <span>Project</span>
            <select value={place.project?.id ?? ''} onChange={(e) => switchProject(e.currentTarget.value)}>
              {!place.project && <option value="">Choose…</option>}
              {place.projects.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </label>
        )}
        {place.project && place.environments.length > 0 && (
          <label class="picker">
            <span>Environment</span>
            <select value={place.workingEnvironment?.api_key ?? ''} onChange={(e) => switchEnv(e.currentTarget.value)}>
              {place.environments.map((e) => (
                <option key={e.api_key} value={e.api_key}>
                  {e.name}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      <div class="user-menu">
        <Link href="/account" class="user-link" title="Your account">
          {user?.first_name || user?.email || 'Account'}
        </Link>
        <button type="button" class="btn btn-ghost" onClick={signOut}>
          Sign out
        </button>
      </div>
    </header>
  );
}

function Sidebar({ place, found, path }) {
  const current = found?.route.parent || found?.route.path;
  const envForLinks = place.workingEnvironment;
  const filled = { ...place, environment: envForLinks };
  return (
    <nav class="sidebar" aria-label="Main">
      {sections.map((s) => {
        if (s.needs === 'environment' && !(place.project && envForLinks)) return null;
        if (s.needs === 'project' && !place.project) return null;
        if (s.needs === 'organisation' && !place.organisation) return null;
        const items = routes.filter((r) => r.nav?.section === s.id).sort((a, b) => a.nav.order - b.nav.order);
        return (
          <div class="nav-section" key={s.id}>
            <h2 class="nav-title">
              {s.label}
              {s.needs === 'environment' && <span class="nav-context">{envForLinks.name}</span>}
              {s.needs === 'project' && <span class="nav-context">{place.project.name}</span>}
              {s.needs === 'organisation' && <span class="nav-context">{place.organisation.name}</span>}
            </h2>
            <ul>
              {items.map((r) => {
                const href = fill(r.path, filled);
                const active = r.path === current;
                return (
                  <li key={r.path}>
                    <Link href={href} class={active ? 'active' : ''} aria-current={active ? 'page' : undefined}>
                      {r.nav.label}
                    </Link>
                  </li>
                );
              })}
            </ul>
          </div>
        );
      })}
      <div class="nav-section">
        <ul>
          <li>
            <Link href="/projects" class={path === '/projects' ? 'active' : ''} aria-current={path === '/projects' ? 'page' : undefined}>
              All projects
            </Link>
          </li>
        </ul>
      </div>
    </nav>
  );
}
