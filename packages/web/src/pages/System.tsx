export default function System(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>System</h1>
    </div>
  );
}
