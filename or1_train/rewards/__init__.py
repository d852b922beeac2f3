"""Verifiers that turn a response into a binary reward (dossier §5): `math` (Math-Verify).

Each verifier module imports its heavy dependencies only inside its worker processes, so importing this
package stays cheap.
"""
