export default function Workflows(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>Workflows</h1>
    </div>
  );
}
