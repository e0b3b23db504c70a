import { PageTitle } from '../components/PageTitle.tsx';

export function IntegrationPage() {
  return <PageTitle title="IntegrationPage">IntegrationPage</PageTitle>;
}
