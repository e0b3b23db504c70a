import { PageTitle } from '../components/PageTitle.tsx';

export function ConnectorsPage() {
  return <PageTitle title="ConnectorsPage">ConnectorsPage</PageTitle>;
}
