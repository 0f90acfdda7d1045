export default function Runs(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>Runs</h1>
    </div>
  );
}
