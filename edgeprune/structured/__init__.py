"""Structured pruning: coupled channel groups from the graph, channel criteria, the "channels"
granularity (registered into the core on import), one-shot pruning and `shrink`."""

from edgeprune.structured.criteria import (ChannelCriterion, channel_scores, criterion_names,
                                           get_criterion, register_channel_criterion)
from edgeprune.structured.gradual import Channels
from edgeprune.structured.graph import ChannelGraph, ChannelGroup, Unprunable
from edgeprune.structured.layer_rules import register_channel_rule
from edgeprune.structured.masked_norm import ChannelMaskedLayerNormalization
from edgeprune.structured.oneshot import prune_channels
from edgeprune.structured.report import ShrinkReport, shrink_report
from edgeprune.structured.selection import channel_masks, select_channels
from edgeprune.structured.shrink import shrink, zero_channels
