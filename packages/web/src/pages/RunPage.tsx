export default function RunPage(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>RunPage</h1>
    </div>
  );
}
