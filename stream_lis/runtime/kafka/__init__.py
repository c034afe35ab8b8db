"""The Kafka runtime: the core's two stages as consumer-group workers on a real broker.

* ``join_stage``: consumes ``impressions`` and ``clicks`` (co-partitioned by impression id),
  one ``Labeller`` per input partition, and sends each arm's records to ``labelled``, keyed by
  arm, with the partition's watermark;
* ``eval_stage``: consumes ``labelled``; each partition's arms (their behaviour log, horizon,
  probes, learners) live on exactly one worker at a time and move with their state;
* ``checkpoints``: both stages save their state together with the offsets it reflects to a
  compacted topic, and resume from it after a restart or rebalance.

kafka-python drives producers, consumers and administration.
"""
