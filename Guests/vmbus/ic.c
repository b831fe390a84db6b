/* Integration-component answers (see ic.h). */
#include "ic.h"

static struct icmsg_hdr *ic_header(uint8_t *buf)
{
	return (struct icmsg_hdr *)(buf + sizeof(struct vmbuspipe_hdr));
}

/* Our first version (in preference order) among the host's list [from, to). */
static int pick(const struct icmsg_negotiate *neg, unsigned from, unsigned to,
		const uint32_t *ours, unsigned n, struct ic_version *chosen)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = from; j < to; j++)
			if (neg->icversion_data[j].major == ours[i] >> 16 &&
			    neg->icversion_data[j].minor == (ours[i] & 0xffff)) {
				*chosen = neg->icversion_data[j];
				return 1;
			}
	return 0;
}

int ic_prep_negotiate_resp(uint8_t *buf, uint32_t len,
			   const uint32_t *fw, unsigned nfw, const uint32_t *srv, unsigned nsrv,
			   uint32_t *nego_fw, uint32_t *nego_srv)
{
	struct icmsg_hdr *hdr = ic_header(buf);
	struct icmsg_negotiate *neg = (struct icmsg_negotiate *)(buf + ICMSG_HDR);
	int found = 0;

	if (len < ICMSG_HDR + 4)        /* offsetof(struct icmsg_negotiate, reserved) */
		return 0;
	hdr->icmsgsize = 0x10;
	unsigned nframe = neg->icframe_vercnt, nmsg = neg->icmsg_vercnt;
	/* Linux reports the counts as "versions" when nothing matches. */
	struct ic_version frame = { (uint16_t)nframe, 0 }, msg = { (uint16_t)nmsg, 0 };

	/* Both lists must lie inside what was received. */
	if (nframe <= IC_VERSION_NEGOTIATION_MAX_VER_COUNT &&
	    nmsg <= IC_VERSION_NEGOTIATION_MAX_VER_COUNT &&
	    ICMSG_NEGOTIATE_PKT_SIZE(nframe, nmsg) <= len)
		found = pick(neg, 0, nframe, fw, nfw, &frame) &&
			pick(neg, nframe, nframe + nmsg, srv, nsrv, &msg);

	neg->icframe_vercnt = found ? 1 : 0;
	neg->icmsg_vercnt = found ? 1 : 0;
	if (nego_fw)
		*nego_fw = (uint32_t)frame.major << 16 | frame.minor;
	if (nego_srv)
		*nego_srv = (uint32_t)msg.major << 16 | msg.minor;
	neg->icversion_data[0] = frame;
	neg->icversion_data[1] = msg;
	return found;
}

enum ic_result ic_heartbeat_respond(uint8_t *buf, uint32_t len, struct ic_outcome *out)
{
	static const uint32_t fw[] = IC_FW_VERSIONS, hb[] = IC_HEARTBEAT_VERSIONS;
	struct icmsg_hdr *hdr = ic_header(buf);
	enum ic_result result;

	if (len < ICMSG_HDR)
		return IC_DROP;
	out->msgtype = hdr->icmsgtype;
	if (hdr->icmsgtype == ICMSGTYPE_NEGOTIATE) {
		result = ic_prep_negotiate_resp(buf, len, fw, 2, hb, 2, &out->framework_version,
						&out->service_version)
			 ? IC_NEGOTIATED : IC_NEGOTIATE_FAILED;
	} else if (hdr->icmsgtype == ICMSGTYPE_HEARTBEAT) {
		/* seq_num only: the host need not fill the reserved words. */
		if (len < ICMSG_HDR + sizeof(uint64_t))
			return IC_DROP;
		struct heartbeat_msg_data *hb_msg = (struct heartbeat_msg_data *)(buf + ICMSG_HDR);
		out->seq_num = hb_msg->seq_num;
		hb_msg->seq_num += 1;
		result = IC_HEARTBEAT;
	} else {
		hdr->status = HV_E_FAIL;
		result = IC_UNKNOWN;
	}
	hdr->icflags = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE;
	return result;
}
