import { PageTitle } from '../components/PageTitle.tsx';

export function RunPage() {
  return <PageTitle title="RunPage">RunPage</PageTitle>;
}
