export default function Viewer(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>Viewer</h1>
    </div>
  );
}
