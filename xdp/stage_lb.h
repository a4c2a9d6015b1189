/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The lb stage. Pass-through until its issue lands: hands the packet on. */
#ifndef SLUICE_XDP_STAGE_LB_H
#define SLUICE_XDP_STAGE_LB_H

#include "pipeline.h"

static __always_inline int stage_lb(struct xdp_md *ctx)
{
	return pipeline_pass_through(ctx, SLUICE_STAGE_LB);
}

#endif /* SLUICE_XDP_STAGE_LB_H */
