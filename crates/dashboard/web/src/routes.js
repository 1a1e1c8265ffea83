// Every page of the dashboard, in one list. A page with `nav` appears in the sidebar, in its
// section, ordered by `order`. Pages added by later work (history, scheduled changes, change
// requests, webhooks) add one entry here and a component under pages/ — see docs/dashboard.md.
import { Home, ProjectHome, Projects } from './pages/Projects.jsx';
import { ProjectSettings } from './pages/ProjectSettings.jsx';
import { EnvironmentSettings } from './pages/EnvironmentSettings.jsx';
import { Features } from './pages/Features.jsx';
import { FeatureEditor } from './pages/FeatureEditor.jsx';
import { Segments, SegmentPage } from './pages/Segments.jsx';
import { Identities, IdentityPage } from './pages/Identities.jsx';
import { Audit } from './pages/Audit.jsx';
import { Pipeline } from './pages/Pipeline.jsx';
import { Account } from './pages/Account.jsx';
import { Members, Invites, Groups, ApiKeys } from './pages/Organisation.jsx';
import { ScheduledChanges } from './pages/ScheduledChanges.jsx';
import { ChangeRequestPage, ChangeRequests } from './pages/ChangeRequests.jsx';
import { WebhookDeliveries, Webhooks } from './pages/Webhooks.jsx';

/** Sidebar sections, in order. `needs` names the place a section's links need. */
export const sections = [
  { id: 'environment', label: 'Environment', needs: 'environment' },
  { id: 'project', label: 'Project', needs: 'project' },
  { id: 'organisation', label: 'Organisation', needs: 'organisation' },
];

const ENV = '/projects/:project/environments/:env';

export const routes = [
  { path: '/', component: Home },
  { path: '/projects', component: Projects },
  { path: '/projects/:project', component: ProjectHome },
  { path: `${ENV}/features`, component: Features, nav: { section: 'environment', label: 'Features', order: 10 } },
  { path: `${ENV}/features/:feature`, component: FeatureEditor, parent: `${ENV}/features` },
  { path: `${ENV}/identities`, component: Identities, nav: { section: 'environment', label: 'Identities', order: 20 } },
  { path: `${ENV}/identities/:identity`, component: IdentityPage, parent: `${ENV}/identities` },
  { path: `${ENV}/scheduled-changes`, component: ScheduledChanges, nav: { section: 'environment', label: 'Scheduled changes', order: 25 } },
  { path: `${ENV}/change-requests`, component: ChangeRequests, nav: { section: 'environment', label: 'Change requests', order: 30 } },
  { path: `${ENV}/change-requests/:request`, component: ChangeRequestPage, parent: `${ENV}/change-requests` },
  { path: `${ENV}/webhooks`, component: Webhooks, nav: { section: 'environment', label: 'Webhooks', order: 60 } },
  { path: `${ENV}/webhooks/:webhook`, component: WebhookDeliveries, parent: `${ENV}/webhooks` },
  { path: `${ENV}/settings`, component: EnvironmentSettings, nav: { section: 'environment', label: 'Settings & keys', order: 90 } },
  { path: '/projects/:project/segments', component: Segments, nav: { section: 'project', label: 'Segments', order: 10 } },
  { path: '/projects/:project/segments/:segment', component: SegmentPage, parent: '/projects/:project/segments' },
  { path: '/projects/:project/audit', component: Audit, nav: { section: 'project', label: 'Audit log', order: 40 } },
  { path: '/projects/:project/pipeline', component: Pipeline, nav: { section: 'project', label: 'Pipeline health', order: 50 } },
  { path: '/projects/:project/settings', component: ProjectSettings, nav: { section: 'project', label: 'Project settings', order: 90 } },
  { path: '/organisations/:org/members', component: Members, nav: { section: 'organisation', label: 'Members', order: 10 } },
  { path: '/organisations/:org/invites', component: Invites, nav: { section: 'organisation', label: 'Invites', order: 20 } },
  { path: '/organisations/:org/groups', component: Groups, nav: { section: 'organisation', label: 'Groups', order: 30 } },
  { path: '/organisations/:org/api-keys', component: ApiKeys, nav: { section: 'organisation', label: 'API keys', order: 40 } },
  { path: '/organisations/:org/webhooks', component: Webhooks, nav: { section: 'organisation', label: 'Webhooks', order: 50 } },
  { path: '/organisations/:org/webhooks/:webhook', component: WebhookDeliveries, parent: '/organisations/:org/webhooks' },
  { path: '/account', component: Account },
];
