"""Alert cases: the operator actions on alerts folded into a case per alert (pure; issue 19)."""
