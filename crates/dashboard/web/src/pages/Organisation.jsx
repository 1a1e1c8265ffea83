// Organisation pages: members, invites, groups, API keys (built on issue 9's endpoints).
import { PageHeader, Empty } from '../components/ui.jsx';

function Pending({ title }) {
  return (
    <>
      <PageHeader title={title} />
      <Empty title="Not available on this server yet" />
    </>
  );
}
export const Members = () => <Pending title="Members" />;
export const Invites = () => <Pending title="Invites" />;
export const Groups = () => <Pending title="Groups" />;
export const ApiKeys = () => <Pending title="API keys" />;
