"""What a shop sends (purchases, refunds, unsubscribes), validated, and money as shops write it.

Low in the house on purpose: the intake validates with it, templates preview sample purchases with
it, support and the CLI build events with it; none of them has to import another to do so."""
