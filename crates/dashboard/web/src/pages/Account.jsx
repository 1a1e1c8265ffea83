import { PageHeader } from '../components/ui.jsx';
import { useSession } from '../lib/session.jsx';

export function Account() {
  const { user } = useSession();
  return (
    <>
      <PageHeader title="Your account" subtitle={user?.email} />
    </>
  );
}
