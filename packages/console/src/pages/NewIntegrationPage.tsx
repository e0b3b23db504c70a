import { PageTitle } from '../components/PageTitle.tsx';

export function NewIntegrationPage() {
  return <PageTitle title="NewIntegrationPage">NewIntegrationPage</PageTitle>;
}
